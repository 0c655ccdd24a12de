//! The ledger on an append-only log of another engine: EventStoreDB /
//! KurrentDB (see `esdb.rs`), or the in-memory log the tests use.
//!
//! **What the engine gives.** An [`AppendLog`] is a set of named streams of
//! entries, each entry at a gap-free position from 0, where an append of
//! several entries to one stream is atomic and can be made conditional on
//! the stream's current length (optimistic concurrency). That is exactly
//! what EventStoreDB's `AppendToStream` with an expected revision does.
//!
//! **How the ledger maps onto it.** Every shiplog record is one entry of
//! one stream, `shiplog-ledger`, at the position equal to its `seq`; a batch
//! is one conditional append. So the engine itself keeps the guarantees the
//! ledger needs across processes: seqs gap-free (positions are), batches
//! atomic (one append), and one writer at a time (an append made against a
//! stale length is refused; the writer catches up and re-checks its batch).
//! Signed checkpoints are entries of `shiplog-checkpoints`, only ever
//! growing. Each record holds everything a copy needs: its fields as
//! written, its content digest and its leaf hash.
//!
//! **What the store keeps in memory.** An engine like this has no secondary
//! indexes shiplog can query, so each process keeps its own index of the
//! ledger: ids, stream tips and seqs, types, and the Merkle tree's stored
//! hashes (about 250 bytes an event), built by reading the log at start-up
//! and kept current by following it. Reads that filter by stream or type
//! find their seqs in the index and fetch those entries from the engine.
//!
//! **Group commit.** Appends that arrive while one is being written wait in
//! a queue and are then checked and written together, as one append.
//!
//! **Engines.** `esdb.rs` (feature `eventstore`) for EventStoreDB /
//! KurrentDB; [`MemoryLog`] for the store's tests; [`FileLog`] (`--store
//! log:DIR`) to run the whole server on this code path without a server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shiplog_core::event::format_time;
use shiplog_core::merkle::{Hash, HashReader, LeafTemplate, MemoryTree, from_hex, to_hex};
use shiplog_core::{EventType, NewEvent, Receipt, RecordedEvent};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::plan::{Group, Recorded};
use crate::sqlite::RawRow;
use crate::{AppendError, EventStore, MAX_READ_LIMIT, RawEvent, ReadQuery, StoreError, StoredCheckpoint, StoredRecord};

/// The stream every ledger record is an entry of, at position `seq`.
pub const LEDGER: &str = "shiplog-ledger";
/// The stream of signed checkpoints, sizes increasing.
pub const CHECKPOINTS: &str = "shiplog-checkpoints";
/// The entry type of a checkpoint.
const CHECKPOINT_TYPE: &str = "shiplog.checkpoint";

/// Most events written in one append (requests are never split).
const MAX_GROUP_EVENTS: usize = 10_000;
/// How long an append whose view went stale (another process wrote first)
/// keeps catching up and trying again before the store gives up.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// Attempts at saving a checkpoint while other processes save theirs.
const MAX_ATTEMPTS: usize = 16;
/// Entries read per call when catching up.
const PAGE: usize = 1_000;
/// Reads fetch across gaps this small rather than make another call.
const GAP: u64 = 32;

/// One entry of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: Uuid,
    /// The entry's type (a ledger record's event type).
    pub kind: String,
    /// JSON.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The engine cannot be reached now; worth trying again.
    #[error("{0}")]
    Unavailable(String),
    /// A conditional append found the stream at another length.
    #[error("the stream holds {actual} entries, not the {expected} expected")]
    Moved { expected: u64, actual: u64 },
    #[error("{0}")]
    Failed(String),
}

/// Named streams of entries at gap-free positions from 0, with atomic,
/// conditional appends: what the [`LogStore`] needs of an engine.
#[async_trait]
pub trait AppendLog: Send + Sync + 'static {
    /// Where the log is, for messages (never a password).
    fn location(&self) -> String;

    /// Up to `count` entries of `stream` from position `from`, in order;
    /// none past its end, or when the stream does not exist yet.
    async fn read(&self, stream: &str, from: u64, count: usize) -> Result<Vec<Entry>, LogError>;

    /// The last entry of `stream` and its position.
    async fn last(&self, stream: &str) -> Result<Option<(u64, Entry)>, LogError>;

    /// Append `entries` to `stream`, all or none, only if it holds exactly
    /// `len` entries now ([`LogError::Moved`] otherwise).
    async fn append(&self, stream: &str, len: u64, entries: Vec<Entry>) -> Result<(), LogError>;

    /// Return once `stream` may hold more than `len` entries: when the
    /// engine says so, or after a while regardless (callers then look).
    async fn grown(&self, stream: &str, len: u64) -> Result<(), LogError>;

    /// Whether the engine answers.
    async fn check(&self) -> Result<(), LogError>;

    /// The most entry bytes one append may carry (EventStoreDB's
    /// `MaxAppendSize`); larger groups are split, and a larger batch is
    /// refused before it is sent.
    fn max_append_bytes(&self) -> usize {
        usize::MAX
    }
}

/// The ledger on an [`AppendLog`]. Cheap to share: clone the `Arc` it lives in.
pub struct LogStore<L: AppendLog> {
    inner: Arc<Inner<L>>,
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner<L> {
    log: L,
    location: String,
    index: RwLock<Index>,
    /// Held while the index is brought up to the log (a catch-up, or an
    /// append and its entries): one at a time.
    sync: tokio::sync::Mutex<()>,
    head_tx: watch::Sender<Option<u64>>,
    head: watch::Receiver<Option<u64>>,
    closed: AtomicBool,
    /// When the index was last confirmed to be the whole log.
    synced: Mutex<Instant>,
    commit_sizes: Mutex<crate::metrics::Histogram>,
}

struct Request {
    events: Vec<NewEvent>,
    leaves: Vec<LeafTemplate>,
    recorded_by: String,
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// What this process knows of the ledger, by seq.
#[derive(Default)]
struct Index {
    metas: Vec<Meta>,
    ids: HashMap<Uuid, u64>,
    streams: HashMap<String, u32>,
    names: Vec<String>,
    /// Each stream's seqs, in version order.
    stream_seqs: Vec<Vec<u64>>,
    tree: MemoryTree,
}

struct Meta {
    stream: u32,
    version: u64,
    kind: EventType,
    recorded_at: DateTime<Utc>,
    leaf: Hash,
    digest: [u8; 32],
}

impl Index {
    fn len(&self) -> u64 {
        self.metas.len() as u64
    }

    fn last_recorded_at(&self) -> Option<DateTime<Utc>> {
        self.metas.last().map(|m| m.recorded_at)
    }

    fn stream_seqs(&self, stream: &str) -> &[u64] {
        self.streams.get(stream).and_then(|&n| self.stream_seqs.get(n as usize)).map_or(&[], Vec::as_slice)
    }

    /// Take in the record at the next seq, checking it continues the ledger.
    fn push(&mut self, m: MetaRecord) -> Result<(), StoreError> {
        let seq = self.len();
        let corrupt = |problem: String| StoreError::Corrupt { seq, problem };
        if m.seq != seq {
            return Err(corrupt(format!("the entry at position {seq} says it is seq {}", m.seq)));
        }
        if self.ids.contains_key(&m.id) {
            return Err(corrupt(format!("id {} is recorded twice", m.id)));
        }
        let kind = EventType::parse(&m.kind).ok_or_else(|| corrupt(format!("unknown type {:?}", m.kind)))?;
        let recorded_at =
            parse_time(&m.recorded_at).map_err(|e| corrupt(format!("recordedAt {:?}: {e}", m.recorded_at)))?;
        let leaf = from_hex(&m.leaf_hash).ok_or_else(|| corrupt("leafHash is not 32 bytes of hex".into()))?;
        let digest = from_hex(&m.digest).ok_or_else(|| corrupt("digest is not 32 bytes of hex".into()))?.0;
        let stream = match self.streams.get(&m.stream) {
            Some(&n) => n,
            None => {
                let n = u32::try_from(self.names.len()).map_err(|_| corrupt("too many streams".into()))?;
                self.streams.insert(m.stream.clone(), n);
                self.names.push(m.stream);
                self.stream_seqs.push(Vec::new());
                n
            }
        };
        let seqs = self.stream_seqs.get_mut(stream as usize).ok_or_else(|| corrupt("stream index".into()))?;
        if m.stream_version != seqs.len() as u64 {
            return Err(corrupt(format!(
                "its streamVersion is {}, but its stream holds {} events before it",
                m.stream_version,
                seqs.len()
            )));
        }
        self.tree.push(leaf).map_err(|e| corrupt(format!("cannot extend the Merkle tree: {e}")))?;
        seqs.push(seq);
        self.ids.insert(m.id, seq);
        self.metas.push(Meta { stream, version: m.stream_version, kind, recorded_at, leaf, digest });
        Ok(())
    }
}

impl Index {
    /// Whether `rows` would continue the ledger as [`Index::push`] requires
    /// (ids new, stream versions gap-free, fields readable): checked before
    /// copied records are written, since written records stay.
    fn check_continuation(&self, rows: &[RecordJson]) -> Result<(), StoreError> {
        let mut ids = std::collections::HashSet::new();
        let mut next: HashMap<&str, u64> = HashMap::new();
        for r in rows {
            let corrupt = |problem: String| StoreError::Corrupt { seq: r.seq, problem };
            if self.ids.contains_key(&r.id) || !ids.insert(r.id) {
                return Err(corrupt(format!("id {} is recorded twice", r.id)));
            }
            EventType::parse(&r.kind).ok_or_else(|| corrupt(format!("unknown type {:?}", r.kind)))?;
            parse_time(&r.recorded_at).map_err(|e| corrupt(format!("recordedAt {:?}: {e}", r.recorded_at)))?;
            let version = next.get(r.stream.as_str()).copied().unwrap_or(self.stream_seqs(&r.stream).len() as u64);
            if r.stream_version != version {
                return Err(corrupt(format!(
                    "its streamVersion is {}, but its stream holds {version} events before it",
                    r.stream_version
                )));
            }
            next.insert(&r.stream, version + 1);
        }
        Ok(())
    }
}

impl Recorded for Index {
    fn receipt(&self, id: &Uuid) -> Option<(Receipt, &[u8])> {
        let seq = *self.ids.get(id)?;
        let m = self.metas.get(usize::try_from(seq).ok()?)?;
        let receipt = Receipt {
            id: *id,
            seq,
            stream: self.names.get(m.stream as usize)?.clone(),
            stream_version: m.version,
            recorded_at: m.recorded_at,
            leaf_hash: m.leaf,
            duplicate: true,
        };
        Some((receipt, &m.digest[..]))
    }

    fn stream_tip(&self, stream: &str) -> Option<u64> {
        self.stream_seqs(stream).len().checked_sub(1).map(|v| v as u64)
    }
}

/// A ledger record as an entry holds it: every field as written, with the
/// digest idempotency rests on and the leaf hash.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordJson {
    seq: u64,
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    stream: String,
    stream_version: u64,
    occurred_at: String,
    recorded_at: String,
    recorded_by: String,
    actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    data: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    links: Value,
    leaf_hash: String,
    digest: String,
}

/// The fields the index needs; the rest (`data` above all) is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaRecord {
    seq: u64,
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    stream: String,
    stream_version: u64,
    recorded_at: String,
    leaf_hash: String,
    digest: String,
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc))
}

/// The entry for a record. Its id is made from the record's leaf hash, not
/// the event's id: an engine like EventStoreDB takes an append of entries
/// whose ids are already at that position as a repeat and answers success
/// without writing, so a record re-planned at the same seq with another
/// `recordedAt` (after a lost answer) must not look like the one stored.
fn encode(record: &RecordJson) -> Result<Entry, String> {
    let leaf = from_hex(&record.leaf_hash).ok_or("the leaf hash is not 32 bytes of hex")?;
    Ok(Entry {
        id: entry_id(&leaf),
        kind: record.kind.clone(),
        data: serde_json::to_vec(record).map_err(|e| e.to_string())?,
    })
}

fn entry_id(leaf: &Hash) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(leaf.0.get(..16).unwrap_or(&[0; 16]));
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn decode(seq: u64, entry: &Entry) -> Result<StoredRecord, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt { seq, problem };
    let r: RecordJson = serde_json::from_slice(&entry.data).map_err(|e| corrupt(format!("unreadable entry: {e}")))?;
    if r.seq != seq {
        return Err(corrupt(format!("the entry at position {seq} says it is seq {}", r.seq)));
    }
    let leaf = from_hex(&r.leaf_hash).ok_or_else(|| corrupt("leafHash is not 32 bytes of hex".into()))?;
    let digest = from_hex(&r.digest).ok_or_else(|| corrupt("digest is not 32 bytes of hex".into()))?;
    let row = RawRow {
        seq,
        id: r.id.hyphenated().to_string(),
        event_type: r.kind,
        stream: r.stream,
        stream_version: r.stream_version,
        occurred_at: r.occurred_at,
        recorded_at: r.recorded_at,
        recorded_by: r.recorded_by,
        actor: r.actor,
        source: r.source,
        data: r.data.to_string(),
        links: if r.links.is_null() { None } else { Some(r.links.to_string()) },
        leaf_hash: Some(leaf.0.to_vec()),
    };
    let (event, data) = row.into_raw()?;
    Ok(StoredRecord { raw: RawEvent { event, data }, digest: digest.0.to_vec() })
}

fn to_append(e: LogError) -> AppendError {
    match e {
        LogError::Unavailable(m) => AppendError::Unavailable(m),
        other => AppendError::Storage(other.to_string()),
    }
}

fn to_store(e: LogError) -> StoreError {
    match e {
        LogError::Unavailable(m) => StoreError::Unavailable(m),
        other => StoreError::Storage(other.to_string()),
    }
}

fn from_store(e: StoreError) -> AppendError {
    match e {
        StoreError::Unavailable(m) => AppendError::Unavailable(m),
        other => AppendError::Storage(other.to_string()),
    }
}

impl<L: AppendLog> LogStore<L> {
    /// Read the whole ledger from `log` into this process's index, then
    /// take appends and follow what other processes write.
    pub async fn open(log: L) -> Result<LogStore<L>, StoreError> {
        Self::open_with_progress(log, |_| {}).await
    }

    /// As [`LogStore::open`], telling `progress` how many events are indexed.
    pub async fn open_with_progress(log: L, mut progress: impl FnMut(u64) + Send) -> Result<LogStore<L>, StoreError> {
        let location = log.location();
        let (head_tx, head) = watch::channel(None);
        let inner = Arc::new(Inner {
            log,
            location,
            index: RwLock::new(Index::default()),
            sync: tokio::sync::Mutex::new(()),
            head_tx,
            head,
            closed: AtomicBool::new(false),
            synced: Mutex::new(Instant::now()),
            commit_sizes: Mutex::new(crate::metrics::Histogram::new(crate::metrics::EVENTS)),
        });
        {
            let _sync = inner.sync.lock().await;
            inner.catch_up(&mut progress).await?;
        }
        let (tx, rx) = mpsc::channel(1024);
        let writer = tokio::spawn(writer(Arc::clone(&inner), rx));
        let follower = tokio::spawn(follower(Arc::clone(&inner)));
        Ok(LogStore {
            inner,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            follower: Mutex::new(Some(follower)),
        })
    }

    /// Where the log is, without secrets.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The log underneath.
    pub fn log(&self) -> &L {
        &self.inner.log
    }

    /// The seqs a query matches, as far as this process knows the ledger.
    fn matching(&self, query: &ReadQuery) -> Result<Vec<u64>, StoreError> {
        let index = self.inner.index.read().map_err(|_| poisoned())?;
        let limit = query.limit.clamp(1, MAX_READ_LIMIT);
        let start = query.after.map_or(0, |a| a.saturating_add(1));
        let of_type = |seq: &u64| {
            query.event_type.is_none_or(|t| {
                usize::try_from(*seq).ok().and_then(|i| index.metas.get(i)).is_some_and(|m| m.kind == t)
            })
        };
        Ok(match &query.stream {
            Some(stream) => {
                let seqs = index.stream_seqs(stream);
                let from = seqs.partition_point(|&s| s < start);
                seqs.get(from..).unwrap_or(&[]).iter().filter(|s| of_type(s)).take(limit).copied().collect()
            }
            None => (start..index.len()).filter(of_type).take(limit).collect(),
        })
    }

    /// The records at `seqs` (ascending), fetched in as few reads as the
    /// gaps between them allow.
    async fn fetch(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, StoreError> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut i = 0;
        while let Some(&first) = seqs.get(i) {
            // A run: following seqs with small gaps, read in one call.
            let mut j = i + 1;
            while let (Some(&prev), Some(&next)) = (seqs.get(j - 1), seqs.get(j)) {
                if next - prev > GAP || next - first >= PAGE as u64 {
                    break;
                }
                j += 1;
            }
            let last = seqs.get(j - 1).copied().unwrap_or(first);
            let count = usize::try_from(last - first + 1).unwrap_or(PAGE);
            let entries = self.inner.log.read(LEDGER, first, count).await.map_err(to_store)?;
            for &seq in seqs.get(i..j).unwrap_or(&[]) {
                let entry = usize::try_from(seq - first).ok().and_then(|k| entries.get(k)).ok_or_else(|| {
                    StoreError::Storage(format!("{} does not hold seq {seq} any more", self.inner.location))
                })?;
                out.push(decode(seq, entry)?);
            }
            i = j;
        }
        Ok(out)
    }

    /// The events at `seqs`, their `data` parsed.
    async fn fetch_events(&self, seqs: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.fetch(seqs)
            .await?
            .into_iter()
            .map(|r| {
                let mut event = r.raw.event;
                event.data = serde_json::from_str(&r.raw.data)
                    .map_err(|e| StoreError::Corrupt { seq: event.seq, problem: format!("data: {e}") })?;
                Ok(event)
            })
            .collect()
    }

    fn sender(&self) -> Option<mpsc::Sender<Request>> {
        self.queue.lock().ok().and_then(|q| q.clone())
    }
}

fn poisoned() -> StoreError {
    StoreError::Storage("the ledger index is unusable after a panic; restart shiplog".into())
}

impl<L: AppendLog> Inner<L> {
    /// Index every entry past what is indexed. The caller holds `sync`.
    async fn catch_up(&self, progress: &mut (dyn FnMut(u64) + Send)) -> Result<(), StoreError> {
        loop {
            let len = self.index.read().map_err(|_| poisoned())?.len();
            let entries = self.log.read(LEDGER, len, PAGE).await.map_err(to_store)?;
            if entries.is_empty() {
                break;
            }
            let records = entries
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    serde_json::from_slice::<MetaRecord>(&e.data).map_err(|err| StoreError::Corrupt {
                        seq: len + k as u64,
                        problem: format!("unreadable entry: {err}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (now, pushed) = {
                let mut index = self.index.write().map_err(|_| poisoned())?;
                let pushed = records.into_iter().try_for_each(|r| index.push(r));
                (index.len(), pushed)
            };
            // What was indexed is the head, even if a record after it is bad.
            self.advance(now);
            pushed?;
            progress(now);
        }
        if let Ok(mut at) = self.synced.lock() {
            *at = Instant::now();
        }
        Ok(())
    }

    fn advance(&self, len: u64) {
        let tip = len.checked_sub(1);
        self.head_tx.send_if_modified(|h| {
            if *h < tip {
                *h = tip;
                true
            } else {
                false
            }
        });
    }

    /// Check and write a group of requests, answering each: as one append,
    /// or as several when one would be larger than the engine takes.
    async fn commit_group(&self, group: Vec<Request>) {
        let _sync = self.sync.lock().await;
        let mut pending = vec![group];
        while let Some(group) = pending.pop() {
            if let Some((first, second)) = self.commit_locked(group).await {
                pending.push(second);
                pending.push(first);
            }
        }
    }

    /// Check and write a group as one append, answering each request; or,
    /// when the append would be larger than the engine takes, hand the
    /// group back in two halves, unanswered. The caller holds `sync`.
    async fn commit_locked(&self, mut group: Vec<Request>) -> Option<(Vec<Request>, Vec<Request>)> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        while started.elapsed() < RETRY_FOR {
            attempt += 1;
            if let Err(e) = self.catch_up(&mut |_| {}).await {
                let e = from_store(e);
                for r in group {
                    let _ = r.reply.send(Err(e.clone()));
                }
                return None;
            }
            // Check every request against the index as it is now.
            let planned = match self.plan(&group) {
                Ok(p) => p,
                Err(e) => {
                    for r in group {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                    return None;
                }
            };
            let (outcomes, records, len) = planned;
            if records.is_empty() {
                for (r, outcome) in group.into_iter().zip(outcomes) {
                    let _ = r.reply.send(outcome);
                }
                return None;
            }
            let entries = match records.iter().map(encode).collect::<Result<Vec<_>, _>>() {
                Ok(e) => e,
                Err(e) => {
                    for r in group {
                        let _ = r.reply.send(Err(AppendError::Storage(format!("cannot encode the batch: {e}"))));
                    }
                    return None;
                }
            };
            let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
            let most = self.log.max_append_bytes();
            if bytes > most {
                if group.len() > 1 {
                    let second = group.split_off(group.len() / 2);
                    return Some((group, second));
                }
                for r in group {
                    let _ = r.reply.send(Err(AppendError::Storage(format!(
                        "the batch is {bytes} bytes as stored, more than {} takes in one append ({most}); \
                         send smaller batches, or raise the server's MaxAppendSize and maxAppendSize in --store",
                        self.location
                    ))));
                }
                return None;
            }
            let written = records.len();
            match self.log.append(LEDGER, len, entries).await {
                Ok(()) => {
                    let applied = self.apply(records);
                    if let Err(e) = applied {
                        // Written, but this process cannot index it: say
                        // so; a restart re-reads the log.
                        let e = AppendError::Storage(format!("written, but not indexed: {e}; restart shiplog"));
                        for r in group {
                            let _ = r.reply.send(Err(e.clone()));
                        }
                        return None;
                    }
                    if let Ok(mut h) = self.commit_sizes.lock() {
                        h.observe(written as f64);
                    }
                    if let Ok(mut at) = self.synced.lock() {
                        *at = Instant::now();
                    }
                    for (r, outcome) in group.into_iter().zip(outcomes) {
                        let _ = r.reply.send(outcome);
                    }
                    return None;
                }
                // Another process wrote first: catch up and check again,
                // after a random pause that grows with each lost race (a
                // busy writer elsewhere would otherwise always be first).
                Err(LogError::Moved { .. }) => {
                    let most = 1u64 << attempt.min(6);
                    let pause = u64::try_from(Uuid::new_v4().as_u128() % u128::from(most * 1_000)).unwrap_or(0);
                    tokio::time::sleep(Duration::from_micros(pause)).await;
                    continue;
                }
                Err(e) => {
                    let e = to_append(e);
                    for r in group {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                    return None;
                }
            }
        }
        for r in group {
            let _ = r.reply.send(Err(AppendError::Unavailable(format!(
                "other processes kept writing to {} first for {} s ({attempt} attempts); try again",
                self.location,
                RETRY_FOR.as_secs()
            ))));
        }
        None
    }

    /// Each request's outcome, the records the group writes, and the
    /// ledger's length they follow.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        group: &[Request],
    ) -> Result<(Vec<Result<Vec<Receipt>, AppendError>>, Vec<RecordJson>, u64), AppendError> {
        let index = self.index.read().map_err(|_| from_store(poisoned()))?;
        let len = index.len();
        // recordedAt never goes backwards along seq, whatever the clocks do.
        let now = Utc::now();
        let at = index.last_recorded_at().map_or(now, |last| now.max(last));
        let mut planner = Group::new(&*index, len, at);
        let mut outcomes = Vec::with_capacity(group.len());
        let mut records = Vec::new();
        for request in group {
            match planner.plan(&request.events, &request.leaves) {
                Ok(p) => {
                    for &i in &p.new {
                        let (Some(e), Some(r)) = (request.events.get(i), p.receipts.get(i)) else { continue };
                        records.push(RecordJson {
                            seq: r.seq,
                            id: e.id,
                            kind: e.event_type.as_str().to_owned(),
                            stream: r.stream.clone(),
                            stream_version: r.stream_version,
                            occurred_at: format_time(&e.occurred_at),
                            recorded_at: planner.recorded_at_text().to_owned(),
                            recorded_by: request.recorded_by.clone(),
                            actor: e.actor.as_str().to_owned(),
                            source: e.source.clone(),
                            data: e.data.clone(),
                            links: if e.links.is_empty() {
                                Value::Null
                            } else {
                                serde_json::to_value(&e.links).map_err(|e| AppendError::Storage(e.to_string()))?
                            },
                            leaf_hash: to_hex(&r.leaf_hash),
                            digest: to_hex(&Hash(e.digest)),
                        });
                    }
                    outcomes.push(Ok(p.receipts));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        Ok((outcomes, records, len))
    }

    /// Index records this process just wrote.
    fn apply(&self, records: Vec<RecordJson>) -> Result<(), StoreError> {
        let len = {
            let mut index = self.index.write().map_err(|_| poisoned())?;
            for r in records {
                index.push(MetaRecord {
                    seq: r.seq,
                    id: r.id,
                    kind: r.kind,
                    stream: r.stream,
                    stream_version: r.stream_version,
                    recorded_at: r.recorded_at,
                    leaf_hash: r.leaf_hash,
                    digest: r.digest,
                })?;
            }
            index.len()
        };
        self.advance(len);
        Ok(())
    }
}

/// Takes the queued requests, as many as have arrived, and commits them
/// together; ends when the queue closes and is empty.
async fn writer<L: AppendLog>(inner: Arc<Inner<L>>, mut queue: mpsc::Receiver<Request>) {
    while let Some(first) = queue.recv().await {
        let mut events = first.events.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match queue.try_recv() {
                Ok(r) => {
                    events += r.events.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        inner.commit_group(group).await;
    }
}

/// Follows what other processes append.
async fn follower<L: AppendLog>(inner: Arc<Inner<L>>) {
    loop {
        let len = match inner.index.read() {
            Ok(index) => index.len(),
            Err(_) => return,
        };
        if let Err(e) = inner.log.grown(LEDGER, len).await {
            tracing::warn!(store = %inner.location, error = %e, "cannot follow the ledger; trying again in a second");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let caught_up = {
            let _sync = inner.sync.lock().await;
            inner.catch_up(&mut |_| {}).await
        };
        if let Err(e) = caught_up {
            tracing::warn!(store = %inner.location, error = %e, "cannot read the ledger's new events; trying again in a second");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointJson {
    size: u64,
    root: String,
    note: String,
    signed_at: String,
}

fn checkpoint_of(pos: u64, entry: &Entry) -> Result<StoredCheckpoint, StoreError> {
    let bad = |what: String| StoreError::Storage(format!("the checkpoint at position {pos} is unreadable: {what}"));
    let cp: CheckpointJson = serde_json::from_slice(&entry.data).map_err(|e| bad(e.to_string()))?;
    let root = from_hex(&cp.root).ok_or_else(|| bad("its root is not 32 bytes of hex".into()))?;
    Ok(StoredCheckpoint { size: cp.size, root, note: cp.note })
}

#[async_trait]
impl<L: AppendLog> EventStore for LogStore<L> {
    async fn append(&self, events: Vec<NewEvent>, recorded_by: &str) -> Result<Vec<Receipt>, AppendError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(AppendError::Unavailable("the store is shutting down".into()));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let leaves = crate::plan::templates(&events, recorded_by)?;
        let queue = self.sender().ok_or_else(|| AppendError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { events, leaves, recorded_by: recorded_by.to_owned(), reply })
            .await
            .map_err(|_| AppendError::Unavailable("the store is shutting down".into()))?;
        answer.await.map_err(|_| AppendError::Unavailable("the store stopped before answering".into()))?
    }

    async fn read(&self, query: ReadQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let seqs = self.matching(&query)?;
        self.fetch_events(&seqs).await
    }

    async fn read_raw(&self, after: Option<u64>, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        Ok(self.read_records(after, limit).await?.into_iter().map(|r| r.raw).collect())
    }

    async fn read_records(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let seqs = self.matching(&ReadQuery { after, limit, ..ReadQuery::default() })?;
        self.fetch(&seqs).await
    }

    async fn import(&self, records: Vec<StoredRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shutting down".into()));
        }
        let _sync = self.inner.sync.lock().await;
        self.inner.catch_up(&mut |_| {}).await?;
        let len = self.inner.index.read().map_err(|_| poisoned())?.len();
        let mut rows = Vec::with_capacity(records.len());
        for (next, record) in (len..).zip(records.iter()) {
            let event = &record.raw.event;
            let seq = event.seq;
            if seq != next {
                return Err(StoreError::Storage(format!(
                    "the copied records must continue this ledger: its next seq is {next}, the record's {seq}"
                )));
            }
            let (full, leaf) = record.checked()?;
            let data = full.data;
            let digest = <[u8; 32]>::try_from(record.digest.as_slice())
                .map_err(|_| StoreError::Corrupt { seq, problem: "the digest is not 32 bytes".into() })?;
            rows.push(RecordJson {
                seq,
                id: event.id,
                kind: event.event_type.as_str().to_owned(),
                stream: event.stream.clone(),
                stream_version: event.stream_version,
                occurred_at: format_time(&event.occurred_at),
                recorded_at: format_time(&event.recorded_at),
                recorded_by: event.recorded_by.clone(),
                actor: event.actor.clone(),
                source: event.source.clone(),
                data,
                links: if event.links.is_empty() {
                    Value::Null
                } else {
                    serde_json::to_value(&event.links).map_err(|e| StoreError::Storage(e.to_string()))?
                },
                leaf_hash: to_hex(&leaf),
                digest: to_hex(&Hash(digest)),
            });
        }
        // Everything checked before anything is written: written entries stay.
        self.inner.index.read().map_err(|_| poisoned())?.check_continuation(&rows)?;
        let entries = rows.iter().map(encode).collect::<Result<Vec<_>, _>>().map_err(StoreError::Storage)?;
        // As few appends as the engine's size limit allows; each is a valid
        // continuation, so a failure part-way leaves a shorter, sound ledger.
        let most = self.inner.log.max_append_bytes();
        let mut entries = entries.into_iter().peekable();
        let mut at = len;
        while entries.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0usize;
            while let Some(e) = entries.next_if(|e| chunk.is_empty() || bytes + e.data.len() <= most) {
                bytes += e.data.len();
                chunk.push(e);
            }
            if bytes > most {
                return Err(StoreError::Storage(format!(
                    "the record at seq {at} alone is {bytes} bytes, more than {} takes in one append ({most}); \
                     raise the server's MaxAppendSize and maxAppendSize in the URL",
                    self.inner.location
                )));
            }
            let n = chunk.len();
            match self.inner.log.append(LEDGER, at, chunk).await {
                Ok(()) => self.inner.apply(rows.drain(..n).collect())?,
                Err(LogError::Moved { .. }) => {
                    return Err(StoreError::Storage(format!(
                        "another process wrote to {} during the copy; copy into a ledger nothing else writes to",
                        self.inner.location
                    )));
                }
                Err(e) => return Err(to_store(e)),
            }
            at += n as u64;
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let seqs: Vec<u64> = {
            let index = self.inner.index.read().map_err(|_| poisoned())?;
            let all = index.stream_seqs(stream);
            let from = usize::try_from(from_version).unwrap_or(usize::MAX).min(all.len());
            all.get(from..).unwrap_or(&[]).iter().take(limit.clamp(1, MAX_READ_LIMIT)).copied().collect()
        };
        self.fetch_events(&seqs).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.index.read().map_err(|_| poisoned())?.stream_tip(stream))
    }

    fn head(&self) -> watch::Receiver<Option<u64>> {
        self.inner.head.clone()
    }

    async fn tree_hashes(&self, indexes: Vec<u64>) -> Result<Vec<Hash>, StoreError> {
        let index = self.inner.index.read().map_err(|_| poisoned())?;
        index
            .tree
            .read_hashes(&indexes)
            .map_err(|e| StoreError::Storage(format!("the Merkle tree cannot be read: {e}")))
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        match self.inner.log.last(CHECKPOINTS).await.map_err(to_store)? {
            None => Ok(None),
            Some((pos, entry)) => checkpoint_of(pos, &entry).map(Some),
        }
    }

    async fn save_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shutting down".into()));
        }
        let json = CheckpointJson {
            size: checkpoint.size,
            root: to_hex(&checkpoint.root),
            note: checkpoint.note,
            signed_at: format_time(&Utc::now()),
        };
        let data = serde_json::to_vec(&json).map_err(|e| StoreError::Storage(e.to_string()))?;
        for _ in 0..MAX_ATTEMPTS {
            // Only ever larger: the last entry is the largest checkpoint.
            let len = match self.inner.log.last(CHECKPOINTS).await.map_err(to_store)? {
                Some((pos, entry)) if checkpoint_of(pos, &entry)?.size >= json.size => return Ok(()),
                Some((pos, _)) => pos + 1,
                None => 0,
            };
            let entry = Entry { id: Uuid::new_v4(), kind: CHECKPOINT_TYPE.to_owned(), data: data.clone() };
            match self.inner.log.append(CHECKPOINTS, len, vec![entry]).await {
                Ok(()) => return Ok(()),
                Err(LogError::Moved { .. }) => continue,
                Err(e) => return Err(to_store(e)),
            }
        }
        Err(StoreError::Unavailable("other processes kept saving checkpoints; try again".into()))
    }

    fn metrics(&self) -> crate::metrics::StoreMetrics {
        crate::metrics::StoreMetrics {
            commit_sizes: self.inner.commit_sizes.lock().ok().map(|h| h.clone()),
            follow_age_seconds: self.inner.synced.lock().ok().map(|at| at.elapsed().as_secs_f64()),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shutting down".into()));
        }
        self.inner.log.check().await.map_err(to_store)
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        // Closing the queue lets the writer finish what was accepted.
        drop(self.queue.lock().ok().and_then(|mut q| q.take()));
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = writer {
            let _ = w.await;
        }
        let follower = self.follower.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = follower {
            f.abort();
            let _ = f.await;
        }
    }
}

impl<L: AppendLog> Drop for LogStore<L> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.follower.lock() {
            if let Some(f) = f.take() {
                f.abort();
            }
        }
    }
}

/// An [`AppendLog`] in memory, with EventStoreDB's semantics (conditional,
/// atomic appends per stream). Shared by cloning: several stores on one
/// `MemoryLog` behave like several processes on one database. It can be
/// made unreachable, to try what the store does when its engine is away.
#[derive(Clone, Default)]
pub struct MemoryLog {
    state: Arc<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    streams: Mutex<HashMap<String, Vec<Entry>>>,
    grown: tokio::sync::Notify,
    down: AtomicBool,
    /// Appends larger than this are refused (0: no limit).
    max_append_bytes: std::sync::atomic::AtomicUsize,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Make the log unreachable (`true`) or reachable again.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Refuse appends whose entries hold more than `bytes`, as EventStoreDB
    /// does past its `MaxAppendSize`.
    pub fn set_max_append_bytes(&self, bytes: usize) {
        self.state.max_append_bytes.store(bytes, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), LogError> {
        if self.state.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("the in-memory log is down".into()));
        }
        Ok(())
    }

    fn streams(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>>, LogError> {
        self.state.streams.lock().map_err(|_| LogError::Failed("the in-memory log is poisoned".into()))
    }
}

#[async_trait]
impl AppendLog for MemoryLog {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn read(&self, stream: &str, from: u64, count: usize) -> Result<Vec<Entry>, LogError> {
        self.up()?;
        let streams = self.streams()?;
        let all = streams.get(stream).map_or(&[][..], Vec::as_slice);
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        Ok(all.get(from..).unwrap_or(&[]).iter().take(count).cloned().collect())
    }

    async fn last(&self, stream: &str) -> Result<Option<(u64, Entry)>, LogError> {
        self.up()?;
        let streams = self.streams()?;
        Ok(streams.get(stream).and_then(|s| s.last().map(|e| (s.len() as u64 - 1, e.clone()))))
    }

    async fn append(&self, stream: &str, len: u64, entries: Vec<Entry>) -> Result<(), LogError> {
        self.up()?;
        let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
        if bytes > self.max_append_bytes() {
            return Err(LogError::Failed(format!("maximum append size exceeded: {bytes} bytes")));
        }
        {
            let mut streams = self.streams()?;
            let s = streams.entry(stream.to_owned()).or_default();
            if s.len() as u64 != len {
                // EventStoreDB's idempotence: the same entry ids already at
                // that position are a repeat, answered as a success.
                let at = usize::try_from(len).unwrap_or(usize::MAX);
                let there = s.get(at..).unwrap_or(&[]).iter().take(entries.len()).map(|e| e.id);
                if !entries.is_empty() && there.eq(entries.iter().map(|e| e.id)) {
                    return Ok(());
                }
                return Err(LogError::Moved { expected: len, actual: s.len() as u64 });
            }
            s.extend(entries);
        }
        self.state.grown.notify_waiters();
        Ok(())
    }

    async fn grown(&self, stream: &str, len: u64) -> Result<(), LogError> {
        let notified = self.state.grown.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.streams()?.get(stream).map_or(0, |s| s.len() as u64) > len {
            return Ok(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        Ok(())
    }

    async fn check(&self) -> Result<(), LogError> {
        self.up()
    }

    fn max_append_bytes(&self) -> usize {
        match self.state.max_append_bytes.load(Ordering::SeqCst) {
            0 => usize::MAX,
            n => n,
        }
    }
}

/// An [`AppendLog`] in files: one JSON-lines file per stream in a
/// directory, each append written and `fsync`ed before it is answered. For
/// one process only (it takes no lock on the files). It exists to run the
/// whole server, end to end, on the code path EventStoreDB uses (`--store
/// log:DIR`), where no EventStoreDB server can be had; it is not a store
/// for production.
pub struct FileLog {
    dir: std::path::PathBuf,
    streams: Mutex<FileStreams>,
    grown: tokio::sync::Notify,
}

/// Each stream's entries, and its file open for appending.
type FileStreams = HashMap<String, (Vec<Entry>, std::fs::File)>;

#[derive(Serialize, Deserialize)]
struct FileEntry {
    id: Uuid,
    kind: String,
    /// The entry's JSON, as text.
    data: String,
}

impl FileLog {
    /// Open (or create) the directory and read every stream in it.
    pub fn open(dir: &std::path::Path) -> Result<FileLog, StoreError> {
        let failed = |what: String| StoreError::Storage(format!("{}: {what}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let mut streams = HashMap::new();
        for file in std::fs::read_dir(dir).map_err(|e| failed(e.to_string()))? {
            let path = file.map_err(|e| failed(e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| failed(e.to_string()))?;
            let mut entries = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let e: FileEntry = serde_json::from_str(line)
                    .map_err(|e| failed(format!("{} line {}: {e}", path.display(), n + 1)))?;
                entries.push(Entry { id: e.id, kind: e.kind, data: e.data.into_bytes() });
            }
            let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| failed(e.to_string()))?;
            streams.insert(name.to_owned(), (entries, file));
        }
        Ok(FileLog { dir: dir.to_owned(), streams: Mutex::new(streams), grown: tokio::sync::Notify::new() })
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, FileStreams>, LogError> {
        self.streams.lock().map_err(|_| LogError::Failed("the file log is poisoned".into()))
    }
}

#[async_trait]
impl AppendLog for FileLog {
    fn location(&self) -> String {
        format!("log:{}", self.dir.display())
    }

    async fn read(&self, stream: &str, from: u64, count: usize) -> Result<Vec<Entry>, LogError> {
        let streams = self.locked()?;
        let all = streams.get(stream).map_or(&[][..], |(e, _)| e.as_slice());
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        Ok(all.get(from..).unwrap_or(&[]).iter().take(count).cloned().collect())
    }

    async fn last(&self, stream: &str) -> Result<Option<(u64, Entry)>, LogError> {
        let streams = self.locked()?;
        Ok(streams.get(stream).and_then(|(s, _)| s.last().map(|e| (s.len() as u64 - 1, e.clone()))))
    }

    async fn append(&self, stream: &str, len: u64, entries: Vec<Entry>) -> Result<(), LogError> {
        use std::io::Write;
        let failed = |e: std::io::Error| LogError::Failed(format!("cannot write to {}: {e}", self.dir.display()));
        {
            let mut streams = self.locked()?;
            if !streams.contains_key(stream) {
                let path = self.dir.join(format!("{stream}.jsonl"));
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(failed)?;
                streams.insert(stream.to_owned(), (Vec::new(), file));
            }
            let Some((all, file)) = streams.get_mut(stream) else {
                return Err(LogError::Failed("the stream vanished".into()));
            };
            if all.len() as u64 != len {
                return Err(LogError::Moved { expected: len, actual: all.len() as u64 });
            }
            let mut text = String::new();
            for e in &entries {
                let data = String::from_utf8(e.data.clone()).map_err(|e| LogError::Failed(e.to_string()))?;
                let line = FileEntry { id: e.id, kind: e.kind.clone(), data };
                text.push_str(&serde_json::to_string(&line).map_err(|e| LogError::Failed(e.to_string()))?);
                text.push('\n');
            }
            // One write and one fsync: durable before the answer. On a
            // failure, cut the file back to what it held, so that neither a
            // torn line nor lines the store was told failed remain.
            let before = file.metadata().map_err(failed)?.len();
            if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.sync_data()) {
                file.set_len(before).and_then(|()| file.sync_data()).map_err(|cut| {
                    LogError::Failed(format!(
                        "cannot write to {} ({e}), nor cut back what was written ({cut}); repair the file before restarting",
                        self.dir.display()
                    ))
                })?;
                return Err(failed(e));
            }
            all.extend(entries);
        }
        self.grown.notify_waiters();
        Ok(())
    }

    async fn grown(&self, stream: &str, len: u64) -> Result<(), LogError> {
        let notified = self.grown.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.locked()?.get(stream).map_or(0, |(s, _)| s.len() as u64) > len {
            return Ok(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        Ok(())
    }

    async fn check(&self) -> Result<(), LogError> {
        self.locked().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{deployments, parse};
    use shiplog_core::merkle::leaf_hash;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_file_log_passes_the_store_contract_and_keeps_the_ledger() {
        crate::contract::run(|| async {
            let dir = tempfile::tempdir().unwrap();
            (LogStore::open(FileLog::open(dir.path()).unwrap()).await.unwrap(), dir)
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(FileLog::open(dir.path()).unwrap()).await.unwrap();
        let receipts = store.append(deployments(5, "checkout"), "ci").await.unwrap();
        store.close().await;
        drop(store);
        let store = LogStore::open(FileLog::open(dir.path()).unwrap()).await.unwrap();
        assert_eq!(*store.head().borrow(), Some(4));
        let back = store.read(ReadQuery { limit: 10, ..ReadQuery::default() }).await.unwrap();
        assert_eq!(
            back.iter().map(|e| e.leaf_hash).collect::<Vec<_>>(),
            receipts.iter().map(|r| Some(r.leaf_hash)).collect::<Vec<_>>()
        );
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_store_passes_the_store_contract() {
        crate::contract::run(|| async {
            let log = MemoryLog::new();
            (LogStore::open(log.clone()).await.unwrap(), log)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_log_share_one_gap_free_order() {
        let log = MemoryLog::new();
        let a = Arc::new(LogStore::open(log.clone()).await.unwrap());
        let b = Arc::new(LogStore::open(log.clone()).await.unwrap());
        crate::contract::two_writers_share_one_order(&a, &b).await;
        for store in [&a, &b] {
            // Per-stream versions gap-free in both views.
            for (s, tasks) in [(0, 6), (1, 5), (2, 5)] {
                let events = store.read_stream(&format!("deploy/svc-{s}/production"), 0, 1000).await.unwrap();
                let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
                assert_eq!(versions, (0..tasks * 30).collect::<Vec<_>>());
            }
            let report = crate::tree::audit(store.as_ref(), |_| {}).await.unwrap();
            assert!(report.verdict.is_ok(), "{:?}", report.verdict);
            assert_eq!(report.events, 480);
        }
        // A retry through the other process is a duplicate with the original receipt.
        let sent = deployments(1, "svc-0");
        let first = a.append(sent.clone(), "t").await.unwrap();
        let mut head = b.head();
        tokio::time::timeout(Duration::from_secs(5), head.wait_for(|h| *h == Some(480))).await.unwrap().unwrap();
        let again = b.append(sent, "t").await.unwrap();
        assert_eq!(again[0], Receipt { duplicate: true, ..first[0].clone() });
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_rebuilds_the_index_from_the_log() {
        let log = MemoryLog::new();
        let store = LogStore::open(log.clone()).await.unwrap();
        let sent = deployments(4, "checkout");
        let receipts = store.append(sent.clone(), "ci").await.unwrap();
        let cp = StoredCheckpoint { size: 4, root: crate::tree::root(&store, 4).await.unwrap(), note: "n".into() };
        store.save_checkpoint(cp.clone()).await.unwrap();
        // A smaller one later does not replace it.
        store.save_checkpoint(StoredCheckpoint { size: 2, root: Hash([1; 32]), note: "old".into() }).await.unwrap();
        store.close().await;
        let err = store.append(deployments(1, "x"), "ci").await.unwrap_err();
        assert!(matches!(err, AppendError::Unavailable(_)), "{err:?}");

        let mut seen = Vec::new();
        let store = LogStore::open_with_progress(log.clone(), |n| seen.push(n)).await.unwrap();
        assert_eq!(seen, [4]);
        assert_eq!(*store.head().borrow(), Some(3));
        assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp));
        assert_eq!(store.stream_version("deploy/checkout/production").await.unwrap(), Some(3));
        let retry = store.append(vec![sent[2].clone()], "ci").await.unwrap();
        assert_eq!(retry[0], Receipt { duplicate: true, ..receipts[2].clone() });
        let report = crate::tree::audit(&store, |_| {}).await.unwrap();
        assert!(report.verdict.is_ok(), "{:?}", report.verdict);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_the_engine_is_away_appends_are_refused_and_nothing_is_lost() {
        let log = MemoryLog::new();
        let store = LogStore::open(log.clone()).await.unwrap();
        store.append(deployments(2, "checkout"), "ci").await.unwrap();
        log.set_down(true);
        let err = store.append(deployments(1, "checkout"), "ci").await.unwrap_err();
        assert!(matches!(err, AppendError::Unavailable(_)), "{err:?}");
        assert!(matches!(store.check().await, Err(StoreError::Unavailable(_))));
        let err = store.read(ReadQuery { limit: 10, ..ReadQuery::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        log.set_down(false);
        store.check().await.unwrap();
        let next = store.append(deployments(1, "checkout"), "ci").await.unwrap();
        assert_eq!((next[0].seq, next[0].stream_version), (2, 2));
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_larger_than_the_engine_takes_are_split_and_batches_refused_whole() {
        let log = MemoryLog::new();
        // About four events' worth: 64 concurrent appends group far past it.
        log.set_max_append_bytes(2_500);
        let store = Arc::new(LogStore::open(log.clone()).await.unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.append(deployments(1, &format!("svc-{}", i % 4)), "ci").await })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap()[0].seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (0..64).collect::<Vec<_>>());
        assert!(store.metrics().commit_sizes.unwrap().count() >= 16, "split into appends of a few events");
        // One batch over the limit: refused whole, with what to do.
        let err = store.append(deployments(10, "svc-0"), "ci").await.unwrap_err();
        assert!(err.to_string().contains("send smaller batches"), "{err}");
        assert_eq!(store.read(ReadQuery { limit: 100, ..ReadQuery::default() }).await.unwrap().len(), 64);
        let report = crate::tree::audit(store.as_ref(), |_| {}).await.unwrap();
        assert!(report.verdict.is_ok(), "{:?}", report.verdict);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_replanned_after_a_lost_answer_is_not_taken_for_the_stored_one() {
        let log = MemoryLog::new();
        let store = LogStore::open(log.clone()).await.unwrap();
        store.append(deployments(1, "checkout"), "ci").await.unwrap();
        let stored = log.read(LEDGER, 0, 1).await.unwrap().remove(0);
        // The engine repeats an append of the very entry at its position…
        log.append(LEDGER, 0, vec![stored.clone()]).await.unwrap();
        assert_eq!(log.read(LEDGER, 0, 10).await.unwrap().len(), 1);
        // …but the same event planned again with another recordedAt is
        // another record (another leaf): its entry id differs, so the engine
        // refuses it instead of answering success without writing it.
        let mut record: RecordJson = serde_json::from_slice(&stored.data).unwrap();
        record.recorded_at = "2030-01-01T00:00:00Z".into();
        record.leaf_hash = to_hex(&Hash([9; 32]));
        let replanned = encode(&record).unwrap();
        assert_ne!(replanned.id, stored.id);
        let err = log.append(LEDGER, 0, vec![replanned]).await.unwrap_err();
        assert!(matches!(err, LogError::Moved { actual: 1, .. }), "{err:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copied_records_are_checked_before_any_is_written_and_split_to_fit() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = crate::SqliteStore::open(&dir.path().join("ledger.db")).unwrap();
        sqlite.append(deployments(12, "svc-0"), "ci-main").await.unwrap();
        let records = sqlite.read_records(None, 1_000).await.unwrap();
        let log = MemoryLog::new();
        log.set_max_append_bytes(2_500);
        let store = LogStore::open(log.clone()).await.unwrap();
        // A stream version that skips: refused, nothing written.
        let mut bad = records.clone();
        bad[7].raw.event.stream_version = 9;
        let mut full = bad[7].raw.event.clone();
        full.data = serde_json::from_str(&bad[7].raw.data).unwrap();
        bad[7].raw.event.leaf_hash = Some(leaf_hash(&full).unwrap());
        let err = store.import(bad).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { seq: 7, problem } if problem.contains("streamVersion")),
            "{err:?}"
        );
        assert!(log.read(LEDGER, 0, 100).await.unwrap().is_empty());
        // In appends of a few records each, under the engine's limit.
        store.import(records.clone()).await.unwrap();
        assert_eq!(store.read_records(None, 100).await.unwrap(), records);
        let reopened = LogStore::open(log).await.unwrap();
        assert!(crate::tree::audit(&reopened, |_| {}).await.unwrap().verdict.is_ok());
        sqlite.close().await;
        store.close().await;
        reopened.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_log_is_refused_at_start_up() {
        let log = MemoryLog::new();
        let store = LogStore::open(log.clone()).await.unwrap();
        store.append(deployments(3, "checkout"), "ci").await.unwrap();
        store.close().await;
        // Someone rewrites the ledger stream with seq 1 missing.
        let mut entries = log.read(LEDGER, 0, 10).await.unwrap();
        entries.remove(1);
        let forged = MemoryLog::new();
        forged.append(LEDGER, 0, entries).await.unwrap();
        let err = LogStore::open(forged).await.err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { seq: 1, .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ledger_copied_in_keeps_its_records_and_roots() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = crate::SqliteStore::open(&dir.path().join("ledger.db")).unwrap();
        for n in 0..5 {
            sqlite.append(deployments(n + 1, &format!("svc-{}", n % 2)), "ci-main").await.unwrap();
        }
        let records = sqlite.read_records(None, 1_000).await.unwrap();
        let store = LogStore::open(MemoryLog::new()).await.unwrap();
        store.import(records[..6].to_vec()).await.unwrap();
        let err = store.import(records[7..].to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("next seq is 6"), "{err}");
        store.import(records[6..].to_vec()).await.unwrap();
        assert_eq!(store.read_records(None, 1_000).await.unwrap(), records);
        for size in [1, 6, 15] {
            assert_eq!(crate::tree::root(&store, size).await.unwrap(), crate::tree::root(&sqlite, size).await.unwrap());
        }
        // Copied events are duplicates of themselves, and appends continue.
        let event = &records[4].raw;
        let again = store
            .append(
                vec![parse(serde_json::json!({
                    "id": event.event.id, "type": "deployment.succeeded", "occurredAt": "2026-11-20T10:00:00Z",
                    "actor": "u-1042", "source": "https://ci.example.com/runs/42",
                    "data": serde_json::from_str::<Value>(&event.data).unwrap()}))],
                "x",
            )
            .await
            .unwrap();
        assert_eq!((again[0].seq, again[0].duplicate), (4, true));
        let more = store.append(deployments(1, "svc-0"), "ci-main").await.unwrap();
        assert_eq!(more[0].seq, 15);
        sqlite.close().await;
        store.close().await;
    }
}
