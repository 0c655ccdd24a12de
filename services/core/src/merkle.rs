//! The ledger as an RFC 6962 Merkle tree.
//!
//! Leaf `seq` is `SHA-256(0x00 || JCS(record))`, where `record` is the
//! recorded event as auditors read it, without its `leafHash`. The tree, its
//! stored-hash layout and its proofs are those of Go's `sumdb/tlog`, through
//! the `tlog_tiles` crate: a store keeps the hashes [`stored_hashes_for_record_hash`]
//! returns for every leaf, at [`stored_hash_index`]`(0, seq)` onwards, and
//! reads them back through a [`HashReader`] to compute roots and proofs.

use std::collections::HashMap;

use serde_json::{Value, json};
pub use tlog_tiles::{
    HASH_SIZE, Hash, HashReader, check_record, check_tree, node_hash, prove_record, prove_tree, record_hash,
    stored_hash_index, stored_hashes_for_record_hash, tree_hash,
};

use crate::canonical::{CanonicalError, to_jcs};
use crate::event::{NewEvent, format_time};
use crate::record::RecordedEvent;

/// Errors of the tree library (bad proof, indexes outside the tree, …).
pub type TreeError = tlog_tiles::Error;

/// The hash of the empty tree.
pub const EMPTY_ROOT: Hash = tlog_tiles::EMPTY_HASH;

/// A recorded event as it is hashed: every field but `leafHash`.
pub fn record_value(event: &RecordedEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut value {
        obj.remove("leafHash");
    }
    value
}

/// The leaf hash of a record given as JSON (the form an export holds): the
/// `leafHash` field, if present, is not part of what is hashed.
pub fn leaf_hash_of_value(record: &Value) -> Result<Hash, CanonicalError> {
    match record {
        Value::Object(obj) if obj.contains_key("leafHash") => {
            let mut obj = obj.clone();
            obj.remove("leafHash");
            Ok(record_hash(&to_jcs(&Value::Object(obj))?))
        }
        other => Ok(record_hash(&to_jcs(other)?)),
    }
}

/// The leaf hash of a recorded event.
pub fn leaf_hash(event: &RecordedEvent) -> Result<Hash, CanonicalError> {
    leaf_hash_of_value(&record_value(event))
}

/// The canonical bytes of an event's record with the three values only the
/// ledger's writer knows (`seq`, `streamVersion`, `recordedAt`) left out, so
/// that the writer's share of hashing a leaf is a few bytes and one SHA-256.
///
/// JCS writes an object's members sorted by key; the record's keys are, in
/// that order: actor, data, id, links, occurredAt, recordedAt, recordedBy,
/// seq, source, stream, streamVersion, type. Each value is canonicalised on
/// its own and the object assembled around them; a test checks that the
/// result equals canonicalising the whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafTemplate {
    /// `{"actor":…,…,"occurredAt":…,"recordedAt":`
    head: Vec<u8>,
    /// `,"recordedBy":…,"seq":`
    middle: Vec<u8>,
    /// `,["source":…,]"stream":…,"streamVersion":`
    before_version: Vec<u8>,
    /// `,"type":…}`
    tail: Vec<u8>,
}

impl LeafTemplate {
    pub fn new(event: &NewEvent, recorded_by: &str) -> Result<LeafTemplate, CanonicalError> {
        let member = |out: &mut Vec<u8>, key: &str, value: &Value| -> Result<(), CanonicalError> {
            out.extend_from_slice(&to_jcs(&json!(key))?);
            out.push(b':');
            out.extend_from_slice(&to_jcs(value)?);
            Ok(())
        };
        let mut head = vec![b'{'];
        member(&mut head, "actor", &json!(event.actor))?;
        head.push(b',');
        member(&mut head, "data", &event.data)?;
        head.push(b',');
        member(&mut head, "id", &json!(event.id))?;
        head.push(b',');
        if !event.links.is_empty() {
            member(&mut head, "links", &json!(event.links))?;
            head.push(b',');
        }
        member(&mut head, "occurredAt", &json!(format_time(&event.occurred_at)))?;
        head.extend_from_slice(b",\"recordedAt\":");

        let mut middle = vec![b','];
        member(&mut middle, "recordedBy", &json!(recorded_by))?;
        middle.extend_from_slice(b",\"seq\":");

        let mut before_version = vec![b','];
        if let Some(source) = &event.source {
            member(&mut before_version, "source", &json!(source))?;
            before_version.push(b',');
        }
        member(&mut before_version, "stream", &json!(event.stream))?;
        before_version.extend_from_slice(b",\"streamVersion\":");

        let mut tail = vec![b','];
        member(&mut tail, "type", &json!(event.event_type))?;
        tail.push(b'}');
        Ok(LeafTemplate { head, middle, before_version, tail })
    }

    /// The leaf hash once the ledger has placed the event.
    pub fn leaf(&self, seq: u64, stream_version: u64, recorded_at: &str) -> Result<Hash, CanonicalError> {
        let mut bytes = Vec::with_capacity(self.head.len() + self.middle.len() + self.before_version.len() + 96);
        bytes.extend_from_slice(&self.head);
        bytes.extend_from_slice(&to_jcs(&json!(recorded_at))?);
        bytes.extend_from_slice(&self.middle);
        bytes.extend_from_slice(&to_jcs(&json!(seq))?);
        bytes.extend_from_slice(&self.before_version);
        bytes.extend_from_slice(&to_jcs(&json!(stream_version))?);
        bytes.extend_from_slice(&self.tail);
        Ok(record_hash(&bytes))
    }
}

/// A whole tree held in memory in the stored-hash layout: about two hashes a
/// leaf. For verifying exports and rebuilding a tree from its leaves.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    stored: Vec<Hash>,
    size: u64,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append the next leaf.
    pub fn push(&mut self, leaf: Hash) -> Result<(), TreeError> {
        let hashes = stored_hashes_for_record_hash(self.size, leaf, self)?;
        self.stored.extend(hashes);
        self.size += 1;
        Ok(())
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        if size > self.size {
            return Err(TreeError::IndexesNotInTree);
        }
        tree_hash(size, self)
    }

    /// Proof that leaf `seq` is in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        prove_record(size, seq, self)
    }

    /// Proof that the tree of `from` leaves is a prefix of the tree of `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, TreeError> {
        prove_tree(to, from, self)
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i).ok().and_then(|i| self.stored.get(i)).copied().ok_or(TreeError::IndexesNotInTree)
            })
            .collect()
    }
}

/// The root of a growing tree without keeping the tree: one hash per level
/// of the largest complete subtrees so far (RFC 6962's MTH, computed
/// incrementally). For checking roots over long histories in little memory.
#[derive(Debug, Default, Clone)]
pub struct CompactRange {
    size: u64,
    /// Roots of the complete subtrees, largest first.
    peaks: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a subtree of the same
        // height as the one being carried: merge them.
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                node = node_hash(left, node);
            }
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => EMPTY_ROOT,
            Some(&last) => peaks.fold(last, |right, &left| node_hash(left, right)),
        }
    }
}

/// The stored-hash indexes a tree computation will read, found by running it
/// against a reader that only takes note. Lets an async store fetch exactly
/// those hashes, then run the computation again on [`FetchedHashes`].
pub fn indexes_read_by<T>(compute: impl FnOnce(&IndexRecorder) -> Result<T, TreeError>) -> Vec<u64> {
    let recorder = IndexRecorder::default();
    let _ = compute(&recorder);
    recorder.indexes.into_inner()
}

/// A [`HashReader`] that records what it is asked for and answers nothing.
#[derive(Default)]
pub struct IndexRecorder {
    indexes: std::cell::RefCell<Vec<u64>>,
}

impl HashReader for IndexRecorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.indexes.borrow_mut().extend_from_slice(indexes);
        Err(TreeError::IndexesNotInTree)
    }
}

/// Hashes fetched ahead of a computation (see [`indexes_read_by`]).
pub struct FetchedHashes(pub HashMap<u64, Hash>);

impl HashReader for FetchedHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or(TreeError::IndexesNotInTree)).collect()
    }
}

/// Hex, as leaf hashes are shown in receipts and events.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h.0)
}

pub fn from_hex(s: &str) -> Option<Hash> {
    let bytes = hex::decode(s).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// Base64, as hashes are shown in checkpoints and proofs.
pub fn to_base64(h: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h.0)
}

pub fn from_base64(s: &str) -> Option<Hash> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Author, NewEvent};
    use chrono::{TimeZone, Utc};

    fn hex_hash(s: &str) -> Hash {
        from_hex(s).unwrap()
    }

    /// The Certificate Transparency test vectors (RFC 6962 implementations,
    /// e.g. certificate-transparency-go's merkle tests): the roots of the
    /// trees of the first 1..8 of these leaves.
    #[test]
    fn roots_match_the_rfc_6962_test_vectors() {
        let leaves: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut tree = MemoryTree::new();
        assert_eq!(tree.root(0).unwrap(), EMPTY_ROOT);
        for (leaf, root) in leaves.iter().zip(roots) {
            tree.push(record_hash(leaf)).unwrap();
            assert_eq!(tree.root(tree.size()).unwrap(), hex_hash(root), "root of {} leaves", tree.size());
        }
    }

    #[test]
    fn a_compact_range_has_the_full_trees_roots() {
        let mut tree = MemoryTree::new();
        let mut range = CompactRange::new();
        assert_eq!(range.root(), EMPTY_ROOT);
        for i in 0u32..300 {
            tree.push(record_hash(&i.to_be_bytes())).unwrap();
            range.push(record_hash(&i.to_be_bytes()));
            assert_eq!(range.root(), tree.root(tree.size()).unwrap(), "size {}", tree.size());
        }
    }

    #[test]
    fn proofs_check_against_roots() {
        let mut tree = MemoryTree::new();
        for i in 0u32..100 {
            tree.push(record_hash(&i.to_be_bytes())).unwrap();
        }
        for size in [1, 7, 8, 63, 64, 100] {
            let root = tree.root(size).unwrap();
            for seq in [0, size / 2, size - 1] {
                let proof = tree.inclusion_proof(seq, size).unwrap();
                check_record(&proof, size, root, seq, record_hash(&(seq as u32).to_be_bytes())).unwrap();
                assert!(check_record(&proof, size, root, seq, record_hash(b"other")).is_err());
            }
            for from in [1, size / 3 + 1, size] {
                let proof = tree.consistency_proof(from, size).unwrap();
                check_tree(&proof, size, root, from, tree.root(from).unwrap()).unwrap();
                assert!(check_tree(&proof, size, root, from, record_hash(b"forged")).is_err());
            }
        }
    }

    #[test]
    fn two_phase_reads_compute_the_same_proof() {
        let mut tree = MemoryTree::new();
        for i in 0u32..37 {
            tree.push(record_hash(&i.to_be_bytes())).unwrap();
        }
        let wanted = indexes_read_by(|r| prove_record(37, 11, r));
        let fetched = FetchedHashes(wanted.iter().map(|&i| (i, tree.read_hashes(&[i]).unwrap()[0])).collect());
        assert_eq!(prove_record(37, 11, &fetched).unwrap(), tree.inclusion_proof(11, 37).unwrap());
    }

    #[test]
    fn the_leaf_template_equals_hashing_the_whole_record() {
        let cases = [
            serde_json::json!({"id": "0192f0c4-1c2d-7a3b-9c4d-5e6f7a8b9c0d", "type": "flag.changed",
                "occurredAt": "2026-11-20T10:00:00.5+02:00", "actor": "ü-1042 \"quoted\"",
                "source": "https://ci.example.com/runs/42?x=\u{1}",
                "data": {"flag": "f", "environment": "production", "from": 1e21, "to": [0.1, -0.0, "\u{2028}"], "€": true},
                "links": [{"rel": "fixes", "id": "0192f0c4-1c2d-7a3b-9c4d-5e6f7a8b9c0e"}]}),
            serde_json::json!({"id": "0192f0c4-1c2d-7a3b-9c4d-5e6f7a8b9c0f", "type": "incident.opened",
                "occurredAt": "2026-11-20T10:00:00Z", "actor": "pager",
                "data": {"incidentId": "INC-1", "service": "s", "environment": "e", "severity": "sev1"}}),
        ];
        for raw in cases {
            let event = NewEvent::parse(raw, Author::Client).unwrap();
            let recorded_at =
                Utc.with_ymd_and_hms(2026, 11, 22, 4, 8, 0).unwrap() + chrono::Duration::microseconds(941_099);
            for (seq, version) in [(0, 0), (42, 7), (9_007_199_254_740_993, 3)] {
                let record = RecordedEvent {
                    seq,
                    id: event.id,
                    event_type: event.event_type,
                    stream: event.stream.as_str().to_owned(),
                    stream_version: version,
                    occurred_at: event.occurred_at,
                    recorded_at,
                    recorded_by: "ci-main".into(),
                    actor: event.actor.as_str().to_owned(),
                    source: event.source.clone(),
                    data: event.data.clone(),
                    links: event.links.clone(),
                    leaf_hash: None,
                };
                let template = LeafTemplate::new(&event, "ci-main").unwrap();
                assert_eq!(
                    template.leaf(seq, version, &format_time(&recorded_at)).unwrap(),
                    leaf_hash(&record).unwrap(),
                    "seq {seq}"
                );
            }
        }
    }
}
