//! Where the ledger lives: the [`EventStore`] trait every backend implements,
//! and the backends (SQLite, the embedded default; PostgreSQL, for scale;
//! EventStoreDB / KurrentDB with the `eventstore` feature, through the
//! engine-neutral [`logstore::LogStore`]).
//!
//! A backend keeps the ledger's guarantees, whatever it stores them in:
//! append-only; idempotent by event `id`; optimistic concurrency per stream
//! through `expectedVersion`; atomic batches; one gap-free global `seq` from
//! 0; a receipt only once the events are durable. The contract test suite in
//! `contract.rs` checks each of these against every backend.

mod error;
#[cfg(feature = "eventstore")]
pub mod esdb;
pub mod logstore;
pub mod metrics;
mod plan;
pub mod postgres;
pub mod sqlite;
pub mod tree;

#[cfg(test)]
mod contract;

use async_trait::async_trait;
use shiplog_core::merkle::Hash;
use shiplog_core::{EventType, NewEvent, Receipt, RecordedEvent};
use tokio::sync::watch;

pub use error::{AppendError, StoreError};
pub use logstore::{FileLog, LogStore, MemoryLog};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Most events a single read returns.
pub const MAX_READ_LIMIT: usize = 10_000;

/// Which events to read, in `seq` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadQuery {
    /// Only events with a `seq` greater than this; `None` reads from the start.
    pub after: Option<u64>,
    /// At most this many events (capped at [`MAX_READ_LIMIT`]).
    pub limit: usize,
    /// Only this stream.
    pub stream: Option<String>,
    /// Only this type.
    pub event_type: Option<EventType>,
}

/// The ledger's storage.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append a batch atomically: every event is recorded, or none is.
    ///
    /// An event whose `id` is already recorded with the same content is not
    /// recorded again: its receipt is the original one, marked `duplicate`.
    /// The same `id` with other content, or an `expectedVersion` the stream
    /// does not have, fails the whole batch. Receipts come back in the
    /// batch's order, only once the events are durable.
    async fn append(&self, events: Vec<NewEvent>, recorded_by: &str) -> Result<Vec<Receipt>, AppendError>;

    /// Events in `seq` order, filtered as the query says.
    async fn read(&self, query: ReadQuery) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event after `after`, in `seq` order, with `data` left as the
    /// JSON text it is stored as: for followers that parse it straight into
    /// typed values (a replay of the whole log). Backends that store parsed
    /// values may keep this default.
    async fn read_raw(&self, after: Option<u64>, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        let events = self.read(ReadQuery { after, limit, ..ReadQuery::default() }).await?;
        Ok(events
            .into_iter()
            .map(|mut event| {
                let data = std::mem::take(&mut event.data).to_string();
                RawEvent { event, data }
            })
            .collect())
    }

    /// One stream's events from `from_version` on, in stream order.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The version of a stream's last event; `None` when it has no events.
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// The `seq` of the last durable event (`None` while the ledger is
    /// empty), changing as new events commit: the way to tail the log.
    fn head(&self) -> watch::Receiver<Option<u64>>;

    /// Stored hashes of the Merkle tree, by stored-hash index (see
    /// `shiplog_core::merkle`). Fails if any is not stored.
    async fn tree_hashes(&self, indexes: Vec<u64>) -> Result<Vec<Hash>, StoreError>;

    /// The largest checkpoint the server has signed.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Keep a checkpoint the server signed.
    async fn save_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError>;

    /// Whether the store can take appends and serve reads now.
    async fn check(&self) -> Result<(), StoreError>;

    /// Events after `after` as stored, with the digest their idempotency
    /// rests on: what copying a ledger to another store reads.
    async fn read_records(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let _ = (after, limit);
        Err(StoreError::Storage("this store cannot list its records for copying".into()))
    }

    /// Write records copied from another ledger, as they are (seq, ids,
    /// times, recordedBy, digests, leaf hashes), at the end of this one: each
    /// must be the next seq and hash to its own leaf. All or nothing.
    async fn import(&self, records: Vec<StoredRecord>) -> Result<(), StoreError> {
        let _ = records;
        Err(StoreError::Storage("this store cannot take copied records".into()))
    }

    /// Figures about the store's work, for `/metrics`.
    fn metrics(&self) -> metrics::StoreMetrics {
        metrics::StoreMetrics::default()
    }

    /// Finish every append already accepted, then stop taking new ones.
    async fn close(&self);
}

/// An event as stored, its `data` still JSON text; `event.data` is null.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub event: RecordedEvent,
    pub data: String,
}

/// An event as stored, for copying between stores.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub raw: RawEvent,
    /// The content digest duplicates are recognised by.
    pub digest: Vec<u8>,
}

impl StoredRecord {
    /// The record with its `data` parsed, checked to hash to its own stored
    /// leaf: what every store's `import` demands of a copied record.
    pub(crate) fn checked(&self) -> Result<(RecordedEvent, Hash), StoreError> {
        let seq = self.raw.event.seq;
        let mut full = self.raw.event.clone();
        full.data = serde_json::from_str(&self.raw.data)
            .map_err(|e| StoreError::Corrupt { seq, problem: format!("data: {e}") })?;
        let leaf = shiplog_core::merkle::leaf_hash(&full)
            .map_err(|e| StoreError::Corrupt { seq, problem: format!("cannot hash the record: {e}") })?;
        if Some(leaf) != self.raw.event.leaf_hash {
            return Err(StoreError::Corrupt { seq, problem: "the record does not hash to its stored leaf".into() });
        }
        Ok((full, leaf))
    }
}

/// A signed checkpoint as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note.
    pub note: String,
}

/// Read events after `after` as they commit, calling `each` for every event
/// in `seq` order, until `each` returns `false` or the store fails. Events
/// committed while a batch is being handed over are not missed: the tail
/// reads from the store, and the head only says when to read again.
pub async fn follow<S, F>(store: &S, mut after: Option<u64>, mut each: F) -> Result<(), StoreError>
where
    S: EventStore + ?Sized,
    F: FnMut(RecordedEvent) -> bool,
{
    let mut head = store.head();
    loop {
        let batch = store.read(ReadQuery { after, limit: 1_000, ..ReadQuery::default() }).await?;
        if batch.is_empty() {
            // Wait for a commit past what was read; `changed` also returns
            // when the store is gone, which ends the tail.
            let seen = *head.borrow_and_update();
            if seen.is_some() && seen > after {
                continue;
            }
            if head.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        for event in batch {
            after = Some(event.seq);
            if !each(event) {
                return Ok(());
            }
        }
    }
}
