//! Interning: names repeated across many events are kept once.

use std::collections::HashMap;
use std::sync::Arc;

/// Interned strings: services, environments, commits and pipelines are
/// repeated across many events; each is kept once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

pub(crate) type Sym = u32;

impl Symbols {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as Sym;
        let name: Arc<str> = Arc::from(s);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        id
    }

    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub(crate) fn name(&self, id: Sym) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}
