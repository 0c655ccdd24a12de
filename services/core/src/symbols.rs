//! Interning: names repeated across many events are kept once.
//!
//! The projections hold a million events' worth of services, commits,
//! artifacts and streams; each distinct name is stored once, in one arena,
//! and referred to by a 4-byte [`Sym`].

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Hash maps and sets of the projections: foldhash, several times faster
/// than SipHash on the short keys they hold, seeded per process.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

pub(crate) type Sym = u32;

/// Interned strings: the text of every name back to back in one `String`,
/// a span per symbol, and a hash table of symbols with their hashes (so
/// that growing the table and most failed comparisons never touch the text).
#[derive(Debug, Default, Clone)]
pub(crate) struct Symbols {
    table: HashTable<(u64, Sym)>,
    spans: Vec<(usize, usize)>,
    text: String,
    hasher: foldhash::fast::RandomState,
}

impl Symbols {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        if let Some(id) = self.find(hash, s) {
            return id;
        }
        let id = self.spans.len() as Sym;
        let start = self.text.len();
        self.text.push_str(s);
        self.spans.push((start, self.text.len()));
        self.table.insert_unique(hash, (hash, id), |&(h, _)| h);
        id
    }

    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.find(self.hasher.hash_one(s), s)
    }

    fn find(&self, hash: u64, s: &str) -> Option<Sym> {
        self.table.find(hash, |&(h, id)| h == hash && self.name(id) == s).map(|&(_, id)| id)
    }

    pub(crate) fn name(&self, id: Sym) -> &str {
        self.spans.get(id as usize).map_or("", |&(start, end)| &self.text[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_kept_once() {
        let mut syms = Symbols::default();
        let a = syms.intern("checkout");
        let b = syms.intern("billing");
        assert_ne!(a, b);
        assert_eq!(syms.intern("checkout"), a);
        assert_eq!(syms.get("billing"), Some(b));
        assert_eq!(syms.get("search"), None);
        assert_eq!(syms.name(a), "checkout");
        assert_eq!(syms.name(b), "billing");
        assert_eq!(syms.intern(""), 2);
        assert_eq!(syms.name(2), "");
        for i in 0..10_000 {
            syms.intern(&format!("sha-{i}"));
        }
        assert_eq!(syms.get("sha-9999").map(|id| syms.name(id)), Some("sha-9999"));
        assert_eq!(syms.name(a), "checkout");
    }
}
