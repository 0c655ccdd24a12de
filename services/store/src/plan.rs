//! Checking a batch against the ledger, without I/O: the rules every store
//! applies before it writes (ids used once, expected versions, duplicates),
//! and the seq, stream version and leaf hash each new event gets.
//!
//! A store reads what it needs of the ledger (the receipts of the batch's
//! ids, the tips of its streams), hands it over as a [`Recorded`], and plans
//! one request after another into a [`Group`]: each sees the events planned
//! before it, and a refused request leaves the group as it was. The group is
//! then written in one go. The SQLite writer keeps its own copy of these
//! rules, interleaved with its in-transaction lookups (its hot path).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shiplog_core::event::format_time;
use shiplog_core::merkle::LeafTemplate;
use shiplog_core::{NewEvent, Receipt};
use uuid::Uuid;

use crate::AppendError;

/// What the ledger already holds, as far as checking a batch needs.
pub(crate) trait Recorded {
    /// The receipt (marked duplicate) and content digest of a recorded event.
    fn receipt(&self, id: &Uuid) -> Option<(Receipt, &[u8])>;
    /// The version of a stream's last recorded event.
    fn stream_tip(&self, stream: &str) -> Option<u64>;
}

/// Requests planned to be written together, at one `recordedAt`.
pub(crate) struct Group<'a, R: ?Sized> {
    ledger: &'a R,
    next_seq: u64,
    recorded_at: DateTime<Utc>,
    recorded_at_text: String,
    /// Streams written by the requests planned so far: their new tips.
    tips: HashMap<String, u64>,
    /// Events planned so far, by id: their receipts and digests.
    planned: HashMap<Uuid, (Receipt, [u8; 32])>,
}

/// One request's outcome: a receipt per event, in the batch's order, and
/// which events are new (to be written, in seq order).
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) receipts: Vec<Receipt>,
    pub(crate) new: Vec<usize>,
}

impl<'a, R: Recorded + ?Sized> Group<'a, R> {
    /// A group whose first new event takes `next_seq`. `recorded_at` is
    /// truncated to microseconds, as every store keeps it.
    pub(crate) fn new(ledger: &'a R, next_seq: u64, recorded_at: DateTime<Utc>) -> Group<'a, R> {
        use chrono::SubsecRound;
        let recorded_at = recorded_at.trunc_subsecs(6);
        Group {
            ledger,
            next_seq,
            recorded_at,
            recorded_at_text: format_time(&recorded_at),
            tips: HashMap::new(),
            planned: HashMap::new(),
        }
    }

    /// The seq the next new event would take.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub(crate) fn recorded_at_text(&self) -> &str {
        &self.recorded_at_text
    }

    /// Check one request (`leaves` are its events' templates, in order) and
    /// give each new event its seq, stream version and leaf hash. On error
    /// the group is unchanged.
    pub(crate) fn plan(&mut self, events: &[NewEvent], leaves: &[LeafTemplate]) -> Result<Planned, AppendError> {
        let mut receipts: Vec<Receipt> = Vec::with_capacity(events.len());
        let mut new: Vec<usize> = Vec::new();
        // New events of this request by id (an id sent twice in one batch),
        // and the tips this request moves.
        let mut fresh: HashMap<Uuid, usize> = HashMap::new();
        let mut tips: HashMap<&str, u64> = HashMap::new();
        let mut next_seq = self.next_seq;
        for (index, event) in events.iter().enumerate() {
            if let Some(&first) = fresh.get(&event.id) {
                let same = events.get(first).is_some_and(|e| e.digest == event.digest);
                match (same, receipts.get(first)) {
                    (true, Some(r)) => {
                        receipts.push(Receipt { duplicate: true, ..r.clone() });
                        continue;
                    }
                    _ => return Err(AppendError::IdRepeated { index, first, id: event.id }),
                }
            }
            let known = match self.planned.get(&event.id) {
                Some((receipt, digest)) => Some((Receipt { duplicate: true, ..receipt.clone() }, &digest[..])),
                None => self.ledger.receipt(&event.id),
            };
            if let Some((receipt, digest)) = known {
                if digest != event.digest.as_slice() {
                    return Err(AppendError::IdConflict { index, id: event.id });
                }
                receipts.push(receipt);
                continue;
            }
            let stream = event.stream.as_str();
            let tip = match tips.get(stream).or_else(|| self.tips.get(stream)) {
                Some(&v) => Some(v),
                None => self.ledger.stream_tip(stream),
            };
            if let Some(expected) = event.expected_version {
                if !expected.matches(tip) {
                    return Err(AppendError::VersionConflict {
                        index,
                        id: event.id,
                        stream: stream.to_owned(),
                        expected: expected.as_i64(),
                        current: tip,
                    });
                }
            }
            let version = tip.map_or(0, |v| v + 1);
            let leaf = leaves
                .get(index)
                .ok_or_else(|| AppendError::Storage(format!("no leaf template for batch index {index}")))?
                .leaf(next_seq, version, &self.recorded_at_text)
                .map_err(|e| AppendError::Storage(format!("cannot hash event {}: {e}", event.id)))?;
            tips.insert(stream, version);
            fresh.insert(event.id, index);
            receipts.push(Receipt {
                id: event.id,
                seq: next_seq,
                stream: stream.to_owned(),
                stream_version: version,
                recorded_at: self.recorded_at,
                leaf_hash: leaf,
                duplicate: false,
            });
            new.push(index);
            next_seq += 1;
        }
        // The request stands: the group takes its changes.
        for (stream, version) in tips {
            self.tips.insert(stream.to_owned(), version);
        }
        for &i in &new {
            if let (Some(event), Some(receipt)) = (events.get(i), receipts.get(i)) {
                self.planned.insert(event.id, (receipt.clone(), event.digest));
            }
        }
        self.next_seq = next_seq;
        Ok(Planned { receipts, new })
    }
}

/// Leaf templates for a batch, made before any lock is taken.
pub(crate) fn templates(events: &[NewEvent], recorded_by: &str) -> Result<Vec<LeafTemplate>, AppendError> {
    events
        .iter()
        .map(|e| LeafTemplate::new(e, recorded_by))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppendError::Storage(format!("cannot hash the batch: {e}")))
}

#[cfg(test)]
mod tests {
    //! The rules as given/when/then cases: a ledger holding some events
    //! (given), requests planned into one group (when), each request's
    //! outcome (then).

    use super::*;
    use crate::contract::{deployment_json, parse};
    use serde_json::{Value, json};
    use shiplog_core::merkle::Hash;

    #[derive(Default)]
    struct Ledger {
        receipts: HashMap<Uuid, (Receipt, [u8; 32])>,
        tips: HashMap<String, u64>,
    }

    impl Recorded for Ledger {
        fn receipt(&self, id: &Uuid) -> Option<(Receipt, &[u8])> {
            self.receipts.get(id).map(|(r, d)| (Receipt { duplicate: true, ..r.clone() }, &d[..]))
        }
        fn stream_tip(&self, stream: &str) -> Option<u64> {
            self.tips.get(stream).copied()
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-11-29T10:00:00.1234567Z".parse().unwrap()
    }

    fn expecting(mut raw: Value, v: i64) -> NewEvent {
        raw["expectedVersion"] = json!(v);
        parse(raw)
    }

    fn plan(group: &mut Group<'_, Ledger>, events: &[NewEvent]) -> Result<Planned, AppendError> {
        group.plan(events, &templates(events, "ci").unwrap())
    }

    /// Summary of an outcome: (seq, stream version, duplicate) per event, or the error's name.
    fn outcome(r: &Result<Planned, AppendError>) -> Result<Vec<(u64, u64, bool)>, String> {
        match r {
            Ok(p) => Ok(p.receipts.iter().map(|r| (r.seq, r.stream_version, r.duplicate)).collect()),
            Err(e) => Err(format!("{e:?}").split([' ', '{']).next().unwrap_or_default().to_owned()),
        }
    }

    #[test]
    fn cases() {
        let recorded = parse(deployment_json("checkout"));
        let stream = recorded.stream.as_str().to_owned();
        let given = || {
            let mut ledger = Ledger::default();
            let receipt = Receipt {
                id: recorded.id,
                seq: 6,
                stream: stream.clone(),
                stream_version: 2,
                recorded_at: at(),
                leaf_hash: Hash([7; 32]),
                duplicate: false,
            };
            ledger.receipts.insert(recorded.id, (receipt, recorded.digest));
            ledger.tips.insert(stream.clone(), 2);
            ledger
        };
        let mut other = deployment_json("checkout");
        other["id"] = json!(recorded.id.to_string());
        other["data"]["version"] = json!("9.9.9");
        let other = parse(other);
        let a = parse(deployment_json("checkout"));
        let b = parse(deployment_json("billing"));
        let ok = |v: &[(u64, u64, bool)]| Ok::<_, String>(v.to_vec());
        let err = |name: &str| Err::<Vec<(u64, u64, bool)>, _>(name.to_owned());

        type Case<'c> = (&'c str, Vec<Vec<NewEvent>>, Vec<Result<Vec<(u64, u64, bool)>, String>>);
        let cases: Vec<Case<'_>> = vec![
            (
                "new events take the next seqs and stream versions",
                vec![vec![a.clone(), b.clone()]],
                vec![ok(&[(10, 3, false), (11, 0, false)])],
            ),
            (
                "a recorded id with the same content is its original receipt",
                vec![vec![recorded.clone()]],
                vec![ok(&[(6, 2, true)])],
            ),
            (
                "a recorded id with other content fails the batch",
                vec![vec![a.clone(), other.clone()]],
                vec![err("IdConflict")],
            ),
            (
                "an id twice in one batch with the same content",
                vec![vec![a.clone(), b.clone(), a.clone()]],
                vec![ok(&[(10, 3, false), (11, 0, false), (10, 3, true)])],
            ),
            (
                "an expected version the stream has",
                vec![vec![expecting(deployment_json("checkout"), 2), expecting(deployment_json("checkout"), 3)]],
                vec![ok(&[(10, 3, false), (11, 4, false)])],
            ),
            (
                "an expected version the stream does not have",
                vec![vec![expecting(deployment_json("checkout"), 1)]],
                vec![err("VersionConflict")],
            ),
            (
                "-1 for a stream that exists",
                vec![vec![expecting(deployment_json("checkout"), -1)]],
                vec![err("VersionConflict")],
            ),
            ("-1 for a new stream", vec![vec![expecting(deployment_json("billing"), -1)]], vec![ok(&[(10, 0, false)])]),
            (
                "a refused request leaves the group as it was for the next",
                vec![vec![a.clone(), expecting(deployment_json("checkout"), 7)], vec![b.clone()]],
                vec![err("VersionConflict"), ok(&[(10, 0, false)])],
            ),
            (
                "a later request sees the streams and ids the earlier ones planned",
                vec![vec![a.clone()], vec![expecting(deployment_json("checkout"), 3), a.clone()]],
                vec![ok(&[(10, 3, false)]), ok(&[(11, 4, false), (10, 3, true)])],
            ),
        ];
        for (name, requests, expected) in cases {
            let ledger = given();
            let mut group = Group::new(&ledger, 10, at());
            let got: Vec<_> = requests.iter().map(|r| outcome(&plan(&mut group, r))).collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn leaves_are_the_records_hashes_at_microseconds() {
        let ledger = Ledger::default();
        let mut group = Group::new(&ledger, 0, at());
        assert_eq!(group.recorded_at_text(), "2026-11-29T10:00:00.123456Z");
        let events = vec![parse(deployment_json("checkout"))];
        let planned = plan(&mut group, &events).unwrap();
        let r = &planned.receipts[0];
        let event = &events[0];
        let record = shiplog_core::RecordedEvent {
            seq: r.seq,
            id: event.id,
            event_type: event.event_type,
            stream: r.stream.clone(),
            stream_version: r.stream_version,
            occurred_at: event.occurred_at,
            recorded_at: r.recorded_at,
            recorded_by: "ci".into(),
            actor: event.actor.as_str().to_owned(),
            source: event.source.clone(),
            data: event.data.clone(),
            links: event.links.clone(),
            leaf_hash: None,
        };
        assert_eq!(r.leaf_hash, shiplog_core::merkle::leaf_hash(&record).unwrap());
        assert_eq!(group.next_seq(), 1);
    }
}
