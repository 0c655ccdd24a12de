//! Checking a ledger's history from its records alone: every record hashes
//! to its leaf, the leaves come in `seq` order without gaps or repeats, and
//! the tree they make has the root a signed checkpoint committed to.
//!
//! `shiplog verify` runs this over an export, the server over its own store
//! at start-up. Records are fed one at a time, in the order they were read;
//! [`Audit::finish`] names the first bad `seq` and what is wrong with it.

use std::fmt;

use serde_json::Value;

use crate::merkle::{CompactRange, Hash, leaf_hash_of_value, to_base64};

/// What is wrong at a `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The record's content does not hash to its leaf.
    Modified,
    /// No record has this `seq`.
    Missing,
    /// The record is not where its `seq` says, or two records traded places.
    Reordered,
    /// A record that should not be there: a repeat, or beyond the checkpoint.
    Extra,
    /// The record cannot be read at all.
    Malformed,
    /// Every record checks, but together they do not make the checkpoint's
    /// tree: the history was rewritten consistently, or the checkpoint is of
    /// another log.
    RootMismatch,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Modified => "modified",
            Fault::Missing => "missing",
            Fault::Reordered => "reordered",
            Fault::Extra => "extra",
            Fault::Malformed => "malformed",
            Fault::RootMismatch => "root mismatch",
        }
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The first bad `seq`; `None` when no single record is at fault.
    pub seq: Option<u64>,
    pub fault: Fault,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}: {}", self.fault.as_str(), self.detail),
            None => write!(f, "{}: {}", self.fault.as_str(), self.detail),
        }
    }
}

/// What a successful audit established.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The root of the tree of all records checked.
    pub root: Hash,
}

/// A record's seq and leaf hash, or why it has none.
pub fn hash_record(record: &Value) -> Result<(u64, Hash), String> {
    let seq = record.get("seq").and_then(Value::as_u64).ok_or_else(|| "it has no seq".to_owned())?;
    let leaf = leaf_hash_of_value(record).map_err(|e| format!("seq {seq} {e}"))?;
    Ok((seq, leaf))
}

/// [`hash_record`] for a record parsed as [`Json`] (an export's line, with
/// its `leafHash` already taken out): the fast path for long exports.
pub fn hash_json_record(record: &crate::canonical::Json) -> Result<(u64, Hash), String> {
    use crate::canonical::Json;
    let Json::Object(members) = record else { return Err("it is not an object".to_owned()) };
    let seq = match members.get("seq") {
        Some(Json::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| "it has no seq".to_owned())?;
    let bytes = record.to_jcs().map_err(|e| format!("seq {seq} {e}"))?;
    Ok((seq, crate::merkle::record_hash(&bytes)))
}

/// Most suspicious records kept for the final diagnosis.
const KEEP: usize = 4096;

struct Mismatch {
    seq: u64,
    record: Value,
    claimed: Hash,
}

/// An audit in progress.
#[derive(Default)]
pub struct Audit {
    /// The tree of the records read in order so far.
    tree: CompactRange,
    /// Its root when it had the checkpoint's size, once it did.
    root_at: Option<(u64, Hash)>,
    /// Stop point: the size whose root to remember.
    remember: Option<u64>,
    position: u64,
    seen: Seen,
    duplicates: Vec<u64>,
    /// (position in the input, seq) where they differ.
    displaced: Vec<(u64, u64)>,
    mismatches: Vec<Mismatch>,
    malformed: Option<(u64, String)>,
    max_seq: Option<u64>,
}

/// Which seqs were seen: a bitset for the seqs a history of this length
/// can have, and a small set for the far-off ones a damaged or hostile
/// input may claim (so no claim can make it allocate without bound).
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    far: std::collections::BTreeSet<u64>,
}

/// How far past the records read so far a seq still goes in the bitset.
const SLACK: u64 = 1 << 20;

impl Seen {
    /// Mark `seq`, read as record number `position`; whether it was new.
    fn insert(&mut self, seq: u64, position: u64) -> bool {
        if seq > position.saturating_add(SLACK) {
            return if self.far.len() < KEEP { self.far.insert(seq) } else { !self.far.contains(&seq) };
        }
        let Ok(word) = usize::try_from(seq / 64) else { return true };
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        match self.bits.get_mut(word) {
            Some(w) => {
                let new = *w & (1 << (seq % 64)) == 0;
                *w |= 1 << (seq % 64);
                new
            }
            None => true,
        }
    }

    fn contains(&self, seq: u64) -> bool {
        let in_bits =
            usize::try_from(seq / 64).ok().and_then(|w| self.bits.get(w)).is_some_and(|w| w & (1 << (seq % 64)) != 0);
        in_bits || self.far.contains(&seq)
    }

    /// The smallest seen seq at or after `from`.
    fn first_from(&self, from: u64) -> Option<u64> {
        let start = usize::try_from(from / 64).unwrap_or(usize::MAX);
        let in_bits = self.bits.iter().enumerate().skip(start).find_map(|(i, &w)| {
            let w = if i == start { w & (u64::MAX << (from % 64)) } else { w };
            (w != 0).then(|| i as u64 * 64 + u64::from(w.trailing_zeros()))
        });
        let far = self.far.range(from..).next().copied();
        match (in_bits, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which of two findings at one seq to report: the more basic fault.
fn rank(f: Fault) -> u8 {
    match f {
        Fault::Malformed => 0,
        Fault::Missing => 1,
        Fault::Extra => 2,
        Fault::Reordered => 3,
        Fault::Modified => 4,
        Fault::RootMismatch => 5,
    }
}

impl Audit {
    pub fn new() -> Audit {
        Audit::default()
    }

    /// An audit that will compare the root of the first `size` records with
    /// a checkpoint's.
    pub fn with_checkpoint_size(size: u64) -> Audit {
        Audit { remember: Some(size), ..Audit::default() }
    }

    /// Feed the next record, with the leaf hash it claims (an export's or a
    /// store's `leafHash`; `None` when there is none to compare with).
    pub fn feed(&mut self, record: &Value, claimed: Option<Hash>) {
        let hashed = hash_record(record);
        self.feed_hashed(hashed, claimed, || record.clone());
    }

    /// Feed the next record once [`hash_record`] has hashed it (hashing is
    /// the costly part, and can run on other threads; feeding is in order).
    /// `record` is asked for only when the record does not match its claimed
    /// leaf, to diagnose what happened to it.
    pub fn feed_hashed(
        &mut self,
        hashed: Result<(u64, Hash), String>,
        claimed: Option<Hash>,
        record: impl FnOnce() -> Value,
    ) {
        let position = self.position;
        self.position += 1;
        let (seq, leaf) = match hashed {
            Ok(hashed) => hashed,
            Err(detail) => {
                self.malformed.get_or_insert((position, detail));
                return;
            }
        };
        if !self.seen.insert(seq, position) {
            self.duplicates.push(seq);
        }
        self.max_seq = self.max_seq.max(Some(seq));
        if seq != position && self.displaced.len() < KEEP {
            self.displaced.push((position, seq));
        }
        if let Some(claimed) = claimed.filter(|c| *c != leaf) {
            if self.mismatches.len() < KEEP {
                self.mismatches.push(Mismatch { seq, record: record(), claimed });
            }
        }
        // The tree is built while records come in order; after the first
        // gap the audit already has its finding.
        if self.remember == Some(self.tree.size()) {
            self.root_at = Some((self.tree.size(), self.tree.root()));
        }
        if seq == self.tree.size() {
            self.tree.push(leaf);
        }
    }

    /// The verdict. With a checkpoint `(size, root)`, the records must be
    /// exactly the checkpoint's `size` and make its `root`.
    pub fn finish(self, checkpoint: Option<(u64, Hash)>) -> Result<Verified, Finding> {
        self.verdict(checkpoint, true)
    }

    /// The verdict for a log that may have grown past its checkpoint: its
    /// first `size` records must make the checkpoint's `root`.
    pub fn finish_extending(self, checkpoint: Option<(u64, Hash)>) -> Result<Verified, Finding> {
        self.verdict(checkpoint, false)
    }

    fn verdict(self, checkpoint: Option<(u64, Hash)>, exact: bool) -> Result<Verified, Finding> {
        let mut findings: Vec<Finding> = Vec::new();
        if let Some((position, detail)) = &self.malformed {
            findings.push(Finding {
                seq: Some(*position),
                fault: Fault::Malformed,
                detail: format!("record {} cannot be read: {detail}", position + 1),
            });
        }
        if let Some(&seq) = self.duplicates.iter().min() {
            findings.push(Finding {
                seq: Some(seq),
                fault: Fault::Extra,
                detail: "a second record has this seq".into(),
            });
        }
        let seen_up_to = self.max_seq.map_or(0, |m| m.saturating_add(1));
        let expected = match checkpoint {
            Some((size, _)) if exact => size,
            Some((size, _)) => size.max(seen_up_to),
            None => seen_up_to,
        };
        if let Some(missing) = (0..expected).find(|&s| !self.seen.contains(s)) {
            findings.push(Finding {
                seq: Some(missing),
                fault: Fault::Missing,
                detail: "no record has this seq".into(),
            });
        } else if self.duplicates.is_empty() {
            if let Some(&(position, _)) = self.displaced.iter().min_by_key(|(_, seq)| *seq) {
                let seq = self.displaced.iter().map(|(_, s)| *s).min().unwrap_or(position);
                findings.push(Finding {
                    seq: Some(seq),
                    fault: Fault::Reordered,
                    detail: "the record with this seq is out of place".into(),
                });
            }
        }
        if let Some((size, _)) = checkpoint.filter(|_| exact) {
            if let Some(extra) = self.seen.first_from(size) {
                findings.push(Finding {
                    seq: Some(extra),
                    fault: Fault::Extra,
                    detail: format!("the checkpoint covers seq 0 to {}", size.saturating_sub(1)),
                });
            }
        }
        findings.extend(self.diagnose_mismatches());

        if let Some(first) = findings.into_iter().min_by_key(|f| (f.seq.unwrap_or(u64::MAX), rank(f.fault))) {
            return Err(first);
        }
        let records = self.tree.size();
        let size = checkpoint.map_or(records, |(size, _)| size);
        let root = if size == records {
            self.tree.root()
        } else {
            match self.root_at {
                Some((at, root)) if at == size => root,
                _ => {
                    return Err(Finding {
                        seq: Some(records.min(size)),
                        fault: Fault::Missing,
                        detail: format!("the checkpoint covers {size} records; {records} were read in order"),
                    });
                }
            }
        };
        if let Some((_, want)) = checkpoint {
            if root != want {
                return Err(Finding {
                    seq: None,
                    fault: Fault::RootMismatch,
                    detail: format!(
                        "the {size} records make the root {}, but the checkpoint signed {}",
                        to_base64(&root),
                        to_base64(&want)
                    ),
                });
            }
        }
        Ok(Verified { records: if exact { size } else { records }, root: if exact { root } else { self.tree.root() } })
    }

    /// The first record whose content does not match its leaf was modified,
    /// unless it matches the leaf of another bad record's place: then the
    /// two traded places. (Only the first is diagnosed: it is the one
    /// reported.)
    fn diagnose_mismatches(&self) -> Vec<Finding> {
        let Some(m) = self.mismatches.iter().min_by_key(|m| m.seq) else {
            return Vec::new();
        };
        let partner = self.mismatches.iter().find(|other| {
            other.seq != m.seq && {
                let mut moved = m.record.clone();
                moved["seq"] = Value::from(other.seq);
                leaf_hash_of_value(&moved).is_ok_and(|leaf| leaf == m.claimed || leaf == other.claimed)
            }
        });
        vec![match partner {
            Some(other) => Finding {
                seq: Some(m.seq.min(other.seq)),
                fault: Fault::Reordered,
                detail: format!(
                    "the records at seq {} and {} traded places",
                    m.seq.min(other.seq),
                    m.seq.max(other.seq)
                ),
            },
            None => Finding {
                seq: Some(m.seq),
                fault: Fault::Modified,
                detail: "its content does not hash to its leaf hash".into(),
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash_of_value;
    use serde_json::json;

    fn records(n: u64) -> Vec<(Value, Hash)> {
        (0..n)
            .map(|seq| {
                let r = json!({"seq": seq, "id": format!("id-{seq}"), "type": "flag.changed", "stream": "s",
                               "streamVersion": seq, "data": {"n": seq}});
                let leaf = leaf_hash_of_value(&r).unwrap();
                (r, leaf)
            })
            .collect()
    }

    fn audit(lines: &[(Value, Hash)], checkpoint: Option<(u64, Hash)>) -> Result<Verified, Finding> {
        let mut a = Audit::new();
        for (r, leaf) in lines {
            a.feed(r, Some(*leaf));
        }
        a.finish(checkpoint)
    }

    fn root_of(lines: &[(Value, Hash)]) -> Hash {
        audit(lines, None).unwrap().root
    }

    /// Given a history of 10 records and its checkpoint, when the records
    /// are altered so, then the audit names this seq and fault.
    #[test]
    fn the_first_bad_seq_is_named() {
        let good = records(10);
        let cp = Some((10, root_of(&good)));
        type Tamper = fn(&mut Vec<(Value, Hash)>);
        let cases: Vec<(&str, Tamper, Option<u64>, Fault)> = vec![
            ("untouched", |_| {}, None, Fault::RootMismatch),
            ("data edited", |l| l[4].0["data"]["n"] = json!(99), Some(4), Fault::Modified),
            (
                "record deleted",
                |l| {
                    l.remove(6);
                },
                Some(6),
                Fault::Missing,
            ),
            ("lines swapped", |l| l.swap(3, 7), Some(3), Fault::Reordered),
            (
                "contents swapped, seqs kept",
                |l| {
                    let (a, b) = (l[2].clone(), l[5].clone());
                    l[2] = (
                        json!({"seq": 2})
                            .as_object()
                            .cloned()
                            .map(|mut o| {
                                o.extend(b.0.as_object().unwrap().clone());
                                o["seq"] = json!(2);
                                Value::Object(o)
                            })
                            .unwrap(),
                        b.1,
                    );
                    l[5] = (
                        json!({"seq": 5})
                            .as_object()
                            .cloned()
                            .map(|mut o| {
                                o.extend(a.0.as_object().unwrap().clone());
                                o["seq"] = json!(5);
                                Value::Object(o)
                            })
                            .unwrap(),
                        a.1,
                    );
                },
                Some(2),
                Fault::Reordered,
            ),
            (
                "record repeated",
                |l| {
                    let r = l[8].clone();
                    l.insert(9, r);
                },
                Some(8),
                Fault::Extra,
            ),
            (
                "record added past the checkpoint",
                |l| {
                    let r = json!({"seq": 10, "id": "x", "type": "flag.changed", "stream": "s", "streamVersion": 10, "data": {}});
                    let leaf = leaf_hash_of_value(&r).unwrap();
                    l.push((r, leaf));
                },
                Some(10),
                Fault::Extra,
            ),
            (
                "content and leaf rewritten together",
                |l| {
                    l[1].0["data"]["n"] = json!(-1);
                    l[1].1 = leaf_hash_of_value(&l[1].0).unwrap();
                },
                None,
                Fault::RootMismatch,
            ),
            (
                "truncated",
                |l| {
                    l.truncate(7);
                },
                Some(7),
                Fault::Missing,
            ),
        ];
        for (name, tamper, seq, fault) in cases {
            let mut lines = good.clone();
            tamper(&mut lines);
            match audit(&lines, cp) {
                Ok(v) => {
                    assert_eq!(name, "untouched", "{name}: tampering went unnoticed");
                    assert_eq!(v.records, 10);
                }
                Err(f) => assert_eq!((f.seq, f.fault), (seq, fault), "{name}: {f}"),
            }
        }
    }

    #[test]
    fn hostile_seqs_neither_exhaust_memory_nor_hang() {
        let good = records(5);
        let cp = Some((5, root_of(&good)));
        for seq in [u64::MAX, 200_000_000_000, 1 << 40] {
            let mut lines = good.clone();
            let r =
                json!({"seq": seq, "id": "x", "type": "flag.changed", "stream": "s", "streamVersion": 0, "data": {}});
            let leaf = leaf_hash_of_value(&r).unwrap();
            lines.push((r, leaf));
            let err = audit(&lines, cp).unwrap_err();
            assert_eq!((err.seq, err.fault), (Some(seq), Fault::Extra), "seq {seq}");
        }
        let mut lines = good.clone();
        lines[2].0["seq"] = json!("2");
        let err = audit(&lines, cp).unwrap_err();
        assert_eq!((err.seq, err.fault), (Some(2), Fault::Malformed), "{err}");
    }

    #[test]
    fn a_checkpoint_of_another_history_does_not_verify() {
        let good = records(5);
        let other = root_of(&records(6));
        let err = audit(&good, Some((5, other))).unwrap_err();
        assert_eq!(err.fault, Fault::RootMismatch);
    }
}
