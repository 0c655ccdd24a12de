//! An event once the ledger has recorded it, and the receipt a client gets.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{EventType, Link, format_time};
use crate::merkle::{Hash, to_hex};

/// An event in the ledger: what the client said, plus where and when the
/// ledger put it (`seq`, `streamVersion`, `recordedAt`) and who recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    /// Position in the one global order: gap-free, from 0.
    pub seq: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub stream: String,
    /// Position in its stream: gap-free, from 0.
    pub stream_version: u64,
    #[serde(serialize_with = "time")]
    pub occurred_at: DateTime<Utc>,
    #[serde(serialize_with = "time")]
    pub recorded_at: DateTime<Utc>,
    /// The name of the credential that recorded the event, set by the server.
    pub recorded_by: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub data: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The event's leaf in the ledger's Merkle tree, as the store holds it.
    /// Not part of the record that is hashed (see `merkle::leaf_hash`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_hex")]
    pub leaf_hash: Option<Hash>,
}

/// What the ledger answers for each appended event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub id: Uuid,
    pub seq: u64,
    pub stream: String,
    pub stream_version: u64,
    #[serde(serialize_with = "time")]
    pub recorded_at: DateTime<Utc>,
    /// The event's leaf in the ledger's Merkle tree (hex).
    #[serde(serialize_with = "hex")]
    pub leaf_hash: Hash,
    /// True when the event was already recorded by an earlier request with
    /// the same `id` and content: this receipt is the original one.
    pub duplicate: bool,
}

fn time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn hex<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(h))
}

fn opt_hex<S: Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => hex(h, s),
        None => s.serialize_none(),
    }
}
