//! The embedded default store: one SQLite file in WAL mode.
//!
//! One writer thread owns the only writing connection. Appends queue to it;
//! it takes everything queued at once (group commit), gives each request a
//! savepoint so a failing batch leaves the others untouched, commits once and
//! fsyncs once (`synchronous = FULL`), and only then answers every request.
//! While it waits on the disk, the next group queues up, so the cost of the
//! fsync is shared by every writer that arrived meanwhile.
//!
//! Reads go through a small pool of read-only connections, which WAL lets
//! run beside the writer without blocking it.
//!
//! Idempotency needs every event id at hand. Client ids are random, and a
//! B-tree index over random keys dirties a different page for nearly every
//! event, which the WAL then writes out on every commit; so the writer keeps
//! the id → seq index in memory instead (about 40 bytes an event), rebuilt
//! from the table when the store opens. Streams are numbered in the order
//! they appear, so the (stream, version) index grows at its end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde_json::Value;
use shiplog_core::event::format_time;
use shiplog_core::merkle::{
    Hash, HashReader, LeafTemplate, TreeError, stored_hash_index, stored_hashes_for_record_hash,
};
use shiplog_core::{EventType, NewEvent, Receipt, RecordedEvent};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::{AppendError, EventStore, MAX_READ_LIMIT, RawEvent, ReadQuery, StoreError, StoredCheckpoint};

/// The migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_events.sql"),
    include_str!("../../../migrations/sqlite/0002_merkle.sql"),
];

/// Most events one group commit takes; more wait for the next one.
const MAX_GROUP_EVENTS: usize = 50_000;
/// Appends that may wait for the writer before callers feel back-pressure.
const QUEUE_DEPTH: usize = 4_096;
const READERS: usize = 4;

/// An event's columns, with its stream's name; `e` is `events`, `s` `streams`.
const COLUMNS: &str = "e.seq, e.id, e.type, s.name, e.stream_version, e.occurred_at, e.recorded_at, e.recorded_by, \
                       e.actor, e.source, e.data, e.links, e.leaf_hash";
const FROM: &str = "events e JOIN streams s ON s.stream_id = e.stream_id";

/// What the writer is asked to do.
enum Request {
    Append(AppendRequest),
    SaveCheckpoint {
        checkpoint: StoredCheckpoint,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Records copied from another ledger, each already checked against its leaf.
    Import {
        records: Vec<crate::StoredRecord>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

struct AppendRequest {
    events: Vec<NewEvent>,
    /// The events' columns as stored, rendered by the caller so that the
    /// single writer thread only writes.
    rows: Vec<Rendered>,
    recorded_by: String,
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// An event's stored text columns.
struct Rendered {
    leaf: LeafTemplate,
    id: String,
    occurred_at: String,
    data: String,
    links: Option<String>,
}

impl Rendered {
    fn render(event: &NewEvent, recorded_by: &str) -> Result<Rendered, AppendError> {
        let failed = |e: serde_json::Error| AppendError::Storage(e.to_string());
        Ok(Rendered {
            leaf: LeafTemplate::new(event, recorded_by).map_err(|e| AppendError::Storage(e.to_string()))?,
            id: event.id.hyphenated().to_string(),
            occurred_at: format_time(&event.occurred_at),
            data: serde_json::to_string(&event.data).map_err(failed)?,
            links: if event.links.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&event.links).map_err(failed)?)
            },
        })
    }
}

/// The SQLite ledger. Cheap to share: clone the `Arc` it lives in.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    head: watch::Receiver<Option<u64>>,
    /// Events per durable commit, as the writer commits them.
    commit_sizes: Arc<Mutex<crate::metrics::Histogram>>,
}

impl SqliteStore {
    /// Open an existing ledger file only to read it: no writer, no schema
    /// change, nothing written to it (for checking a backup or a restored
    /// file without altering the evidence). Appends are refused.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Unavailable(format!("no ledger at {}", path.display())));
        }
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| open_error(path, e))?;
        reader.pragma_update(None, "busy_timeout", 5_000)?;
        let version: i64 = reader.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if usize::try_from(version).ok() != Some(MIGRATIONS.len()) {
            return Err(StoreError::Unavailable(format!(
                "{} has schema version {version}, this shiplog reads {}; open it with a matching shiplog",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        let last: Option<u64> = reader.query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))?;
        let (_, head) = watch::channel(last);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                queue: Mutex::new(None),
                writer: Mutex::new(None),
                readers: vec![Mutex::new(reader)],
                next_reader: AtomicUsize::new(0),
                head,
                commit_sizes: Arc::new(Mutex::new(crate::metrics::Histogram::new(crate::metrics::EVENTS))),
            }),
        })
    }

    /// Open (creating if need be) the ledger file at `path`, bring its
    /// schema up to date, and start the writer.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5_000)?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        // The checkpointer thread copies the WAL into the database, off the
        // writer's path; see `checkpointer`.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrate(&mut conn)?;
        backfill_leaves(&mut conn)?;

        let next_seq: u64 = conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        let mut streams = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT s.name, s.stream_id, MAX(e.stream_version) FROM streams s JOIN events e ON e.stream_id = s.stream_id GROUP BY s.stream_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, StreamTip { stream_id: r.get(1)?, version: r.get(2)? }))
            })?;
            for row in rows {
                let (name, tip) = row?;
                streams.insert(name, tip);
            }
        }
        let next_stream_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(stream_id) + 1, 0) FROM streams", [], |r| r.get(0))?;
        let mut ids = HashMap::with_capacity(usize::try_from(next_seq).unwrap_or(0));
        {
            let mut stmt = conn.prepare("SELECT id, seq FROM events")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
            for row in rows {
                let (id, seq) = row?;
                let id = Uuid::parse_str(&id)
                    .map_err(|e| StoreError::Corrupt { seq, problem: format!("id {id:?}: {e}") })?;
                if ids.insert(id, seq).is_some() {
                    return Err(StoreError::Corrupt { seq, problem: format!("id {id} is recorded twice") });
                }
            }
        }
        // The scans above filled the writer's page cache with pages appends
        // will not need; give that memory back.
        conn.execute_batch("PRAGMA shrink_memory")?;
        let last_recorded_at = conn
            .query_row("SELECT recorded_at FROM events ORDER BY seq DESC LIMIT 1", [], |r| r.get::<_, String>(0))
            .optional()?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .map_err(|e| open_error(path, e))?;
            reader.pragma_update(None, "busy_timeout", 5_000)?;
            readers.push(Mutex::new(reader));
        }

        let (head_tx, head_rx) = watch::channel(next_seq.checked_sub(1));
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE_DEPTH);
        let commit_sizes = Arc::new(Mutex::new(crate::metrics::Histogram::new(crate::metrics::EVENTS)));
        let writer = Writer {
            commit_sizes: Arc::clone(&commit_sizes),
            conn,
            recent: RecentHashes::default(),
            next_seq,
            next_stream_id,
            streams,
            ids,
            last_recorded_at,
            head: head_tx,
        };
        let checkpoints = Connection::open(path).map_err(|e| open_error(path, e))?;
        checkpoints.pragma_update(None, "busy_timeout", 5_000)?;
        let handle = std::thread::Builder::new()
            .name("shiplog-writer".into())
            .spawn(move || writer.run(queue_rx, checkpoints))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))?;

        tracing::info!(path = %path.display(), events = next_seq, "sqlite store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                queue: Mutex::new(Some(queue_tx)),
                writer: Mutex::new(Some(handle)),
                readers,
                next_reader: AtomicUsize::new(0),
                head: head_rx,
                commit_sizes,
            }),
        })
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` on a read-only connection, off the async threads.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len().max(1);
            let conn = inner
                .readers
                .get(i)
                .ok_or_else(|| StoreError::Unavailable("no reader connection".into()))?
                .lock()
                .map_err(|_| StoreError::Unavailable("a reader connection was poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    fn queue(&self) -> Option<mpsc::Sender<Request>> {
        self.inner.queue.lock().ok().and_then(|q| q.clone())
    }
}

/// Copy the ledger at `source` to a new file `dest`, online: one consistent
/// snapshot (SQLite's `VACUUM INTO`, inside a read transaction), taken
/// beside a server that keeps appending. `dest` must not exist.
pub fn backup(source: &Path, dest: &Path) -> Result<(), StoreError> {
    if !source.exists() {
        return Err(StoreError::Unavailable(format!("no ledger at {}", source.display())));
    }
    let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| open_error(source, e))?;
    conn.pragma_update(None, "busy_timeout", 5_000)?;
    let dest_text =
        dest.to_str().ok_or_else(|| StoreError::Storage(format!("the backup path {} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_text])?;
    // VACUUM INTO leaves the copy's durability to the caller.
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Storage(format!("cannot sync {}: {e}", dest.display())))?;
    Ok(())
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "the ledger file has schema version {applied}, newer than this shiplog knows ({}); run a newer shiplog",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "applied sqlite migration");
    }
    Ok(())
}

/// Ledgers written before the Merkle tree existed have events without leaf
/// hashes: hash them, in seq order, once. This fills a column that was
/// empty; it changes nothing that was recorded.
fn backfill_leaves(conn: &mut Connection) -> Result<(), StoreError> {
    let missing: u64 = conn.query_row("SELECT COUNT(*) FROM events WHERE leaf_hash IS NULL", [], |r| r.get(0))?;
    if missing == 0 {
        return Ok(());
    }
    tracing::info!(events = missing, "hashing events recorded before the Merkle tree");
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM {FROM} WHERE e.leaf_hash IS NULL ORDER BY e.seq"))?;
        let rows = stmt.query_map([], raw_row)?;
        let mut update = tx.prepare("UPDATE events SET leaf_hash = ?2 WHERE seq = ?1 AND leaf_hash IS NULL")?;
        let mut recent = RecentHashes::default();
        for row in rows {
            let event = row.map_err(StoreError::from).and_then(RawRow::into_event)?;
            let seq = event.seq;
            let leaf = shiplog_core::merkle::leaf_hash(&event)
                .map_err(|e| StoreError::Corrupt { seq, problem: e.to_string() })?;
            append_leaf(&tx, &mut recent, seq, leaf)
                .map_err(|e| StoreError::Corrupt { seq, problem: e.to_string() })?;
            update.execute(params![seq, leaf.0.as_slice()])?;
        }
        recent.save(&tx).map_err(|e| StoreError::Storage(e.to_string()))?;
    }
    tx.commit()?;
    Ok(())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, events: Vec<NewEvent>, recorded_by: &str) -> Result<Vec<Receipt>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let queue = self.queue().ok_or_else(|| AppendError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        let rows = events.iter().map(|e| Rendered::render(e, recorded_by)).collect::<Result<Vec<_>, _>>()?;
        let request = AppendRequest { events, rows, recorded_by: recorded_by.to_owned(), reply };
        queue
            .send(Request::Append(request))
            .await
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| AppendError::Unavailable("the writer stopped before answering".into()))?
    }

    async fn read(&self, query: ReadQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with_reader(move |conn| {
            let limit = query.limit.clamp(1, MAX_READ_LIMIT);
            // seq is stored as a signed integer; -1 reads from the start.
            let after = query.after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
            let type_name = query.event_type.map(EventType::as_str);
            let (sql, args): (String, Vec<&dyn rusqlite::ToSql>) = match (&query.stream, &type_name) {
                (None, None) => {
                    (format!("SELECT {COLUMNS} FROM {FROM} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"), vec![&after, &limit])
                }
                (Some(stream), None) => (
                    format!(
                        "SELECT {COLUMNS} FROM {FROM} WHERE s.name = ?3 AND e.seq > ?1 ORDER BY e.stream_version LIMIT ?2"
                    ),
                    vec![&after, &limit, stream],
                ),
                (None, Some(t)) => (
                    format!("SELECT {COLUMNS} FROM {FROM} WHERE e.type = ?3 AND e.seq > ?1 ORDER BY e.seq LIMIT ?2"),
                    vec![&after, &limit, t],
                ),
                (Some(stream), Some(t)) => (
                    format!(
                        "SELECT {COLUMNS} FROM {FROM} WHERE s.name = ?3 AND e.type = ?4 AND e.seq > ?1 ORDER BY e.stream_version LIMIT ?2"
                    ),
                    vec![&after, &limit, stream, t],
                ),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(args.as_slice(), raw_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(RawRow::into_event)).collect()
        })
        .await
    }

    async fn read_raw(&self, after: Option<u64>, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        self.with_reader(move |conn| {
            let limit = limit.clamp(1, MAX_READ_LIMIT);
            let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
            let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![after, limit], raw_row)?;
            rows.map(|r| {
                r.map_err(StoreError::from).and_then(RawRow::into_raw).map(|(event, data)| RawEvent { event, data })
            })
            .collect()
        })
        .await
    }

    async fn read_records(&self, after: Option<u64>, limit: usize) -> Result<Vec<crate::StoredRecord>, StoreError> {
        self.with_reader(move |conn| {
            let limit = limit.clamp(1, MAX_READ_LIMIT);
            let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
            let sql = format!("SELECT {COLUMNS}, e.digest FROM {FROM} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![after, limit], |r| Ok((raw_row(r)?, r.get::<_, Vec<u8>>(13)?)))?;
            rows.map(|r| {
                let (row, digest) = r.map_err(StoreError::from)?;
                let (event, data) = row.into_raw()?;
                Ok(crate::StoredRecord { raw: RawEvent { event, data }, digest })
            })
            .collect()
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_owned();
        self.with_reader(move |conn| {
            let limit = limit.clamp(1, MAX_READ_LIMIT);
            let from = i64::try_from(from_version).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE s.name = ?1 AND e.stream_version >= ?2 ORDER BY e.stream_version LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![stream, from, limit], raw_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(RawRow::into_event)).collect()
        })
        .await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let stream = stream.to_owned();
        self.with_reader(move |conn| {
            let v: Option<u64> = conn.query_row(
                &format!("SELECT MAX(e.stream_version) FROM {FROM} WHERE s.name = ?1"),
                [stream],
                |r| r.get(0),
            )?;
            Ok(v)
        })
        .await
    }

    fn head(&self) -> watch::Receiver<Option<u64>> {
        self.inner.head.clone()
    }

    async fn tree_hashes(&self, indexes: Vec<u64>) -> Result<Vec<Hash>, StoreError> {
        self.with_reader(move |conn| {
            StoredHashes(conn)
                .read_hashes(&indexes)
                .map_err(|e| StoreError::Storage(format!("the stored Merkle tree cannot be read: {e}")))
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.with_reader(|conn| {
            let row = conn
                .query_row("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1", [], |r| {
                    Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            row.map(|(size, root, note)| {
                let root = <[u8; 32]>::try_from(root)
                    .map(Hash)
                    .map_err(|_| StoreError::Storage(format!("the checkpoint at size {size} has a malformed root")))?;
                Ok(StoredCheckpoint { size, root, note })
            })
            .transpose()
        })
        .await
    }

    async fn import(&self, records: Vec<crate::StoredRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // Each record must hash to its own leaf: checked here, off the writer.
        for record in &records {
            record.checked()?;
        }
        let queue = self.queue().ok_or_else(|| StoreError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request::Import { records, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    async fn save_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError> {
        let queue = self.queue().ok_or_else(|| StoreError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request::SaveCheckpoint { checkpoint, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    fn metrics(&self) -> crate::metrics::StoreMetrics {
        crate::metrics::StoreMetrics {
            commit_sizes: self.inner.commit_sizes.lock().ok().map(|h| h.clone()),
            follow_age_seconds: None,
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        match self.queue() {
            Some(q) if !q.is_closed() => {}
            _ => return Err(StoreError::Unavailable("the writer is not running".into())),
        }
        self.with_reader(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn close(&self) {
        // Dropping the queue's last sender lets the writer finish what is
        // queued and stop.
        if let Ok(mut q) = self.inner.queue.lock() {
            q.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let joined = tokio::task::spawn_blocking(move || handle.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the sqlite writer thread ended abnormally");
            }
        }
    }
}

/// The writer: the one connection that writes, and what it knows of the
/// ledger's tip so that it need not ask the database on every append.
struct Writer {
    commit_sizes: Arc<Mutex<crate::metrics::Histogram>>,
    conn: Connection,
    recent: RecentHashes,
    next_seq: u64,
    next_stream_id: i64,
    /// Every stream's number and current version.
    streams: HashMap<String, StreamTip>,
    /// Every recorded event's seq, by id.
    ids: HashMap<Uuid, u64>,
    last_recorded_at: DateTime<Utc>,
    head: watch::Sender<Option<u64>>,
}

#[derive(Debug, Clone, Copy)]
struct StreamTip {
    stream_id: i64,
    version: u64,
}

/// What a group has added so far, kept apart until it commits.
struct Pending {
    next_seq: u64,
    next_stream_id: i64,
    streams: HashMap<String, StreamTip>,
    ids: HashMap<Uuid, u64>,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Request>, checkpoints: Connection) {
        let (committed, commits) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("shiplog-checkpointer".into())
            .spawn(move || checkpointer(&checkpoints, &commits));
        if let Err(e) = &checkpointer {
            tracing::warn!(error = %e, "cannot start the checkpointer; the WAL will grow until restart");
        }
        let mut next = queue.blocking_recv();
        while let Some(request) = next.take() {
            let first = match request {
                Request::Append(first) => first,
                Request::SaveCheckpoint { checkpoint, reply } => {
                    let _ = reply.send(self.save_checkpoint(&checkpoint));
                    next = queue.blocking_recv();
                    continue;
                }
                Request::Import { records, reply } => {
                    let count = records.len();
                    let done = self.import(records);
                    if done.is_ok() {
                        let _ = committed.send(());
                        if let Ok(mut h) = self.commit_sizes.lock() {
                            h.observe(count as f64);
                        }
                    }
                    let _ = reply.send(done);
                    next = queue.blocking_recv();
                    continue;
                }
            };
            let mut count = first.events.len();
            let mut group = vec![first];
            while count < MAX_GROUP_EVENTS {
                match queue.try_recv() {
                    Ok(Request::Append(request)) => {
                        count += request.events.len();
                        group.push(request);
                    }
                    Ok(other) => {
                        // Saved after this group, in the order it came.
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if self.commit_group(group) {
                let _ = committed.send(());
                if let Ok(mut h) = self.commit_sizes.lock() {
                    h.observe(count as f64);
                }
            }
            if next.is_none() {
                next = queue.blocking_recv();
            }
        }
        drop(committed);
        if let Ok(handle) = checkpointer {
            let _ = handle.join();
        }
        tracing::info!(events = self.next_seq, "sqlite writer stopped");
    }

    fn save_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING",
                params![cp.size, cp.root.0.as_slice(), cp.note, format_time(&Utc::now())],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// Write copied records as they are, at the end of the ledger, in one
    /// transaction: each must take the next seq, a new id and its stream's
    /// next version (their leaves were checked by the caller).
    fn import(&mut self, records: Vec<crate::StoredRecord>) -> Result<(), StoreError> {
        let mut streams: HashMap<String, StreamTip> = HashMap::new();
        let mut ids: HashMap<Uuid, u64> = HashMap::new();
        let mut next_stream_id = self.next_stream_id;
        let mut last_recorded_at = self.last_recorded_at;
        let tx = self.conn.transaction()?;
        let written = (|| {
            let mut insert_stream = tx.prepare_cached("INSERT INTO streams (stream_id, name) VALUES (?1, ?2)")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (seq, id, type, stream_id, stream_version, occurred_at, recorded_at, recorded_by, actor, source, data, links, digest, leaf_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for (seq, record) in (self.next_seq..).zip(&records) {
                let e = &record.raw.event;
                let corrupt = |problem: String| StoreError::Corrupt { seq, problem };
                if e.seq != seq {
                    return Err(StoreError::Storage(format!(
                        "the copied records must continue this ledger: its next seq is {seq}, the record's {}",
                        e.seq
                    )));
                }
                if self.ids.contains_key(&e.id) || ids.insert(e.id, seq).is_some() {
                    return Err(corrupt(format!("id {} is recorded twice", e.id)));
                }
                let tip = streams.get(&e.stream).or_else(|| self.streams.get(&e.stream)).copied();
                let expected = tip.map_or(0, |t| t.version + 1);
                if e.stream_version != expected {
                    return Err(corrupt(format!(
                        "its streamVersion is {}, but its stream holds {expected} events before it",
                        e.stream_version
                    )));
                }
                let stream_id = match tip {
                    Some(t) => t.stream_id,
                    None => {
                        insert_stream.execute(params![next_stream_id, e.stream])?;
                        next_stream_id += 1;
                        next_stream_id - 1
                    }
                };
                streams.insert(e.stream.clone(), StreamTip { stream_id, version: e.stream_version });
                let leaf = e.leaf_hash.ok_or_else(|| corrupt("no leaf hash".into()))?;
                append_leaf(&tx, &mut self.recent, seq, leaf).map_err(|e| StoreError::Storage(e.to_string()))?;
                let links = if e.links.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(&e.links).map_err(|err| corrupt(format!("links: {err}")))?)
                };
                insert.execute(params![
                    seq,
                    e.id.hyphenated().to_string(),
                    e.event_type.as_str(),
                    stream_id,
                    e.stream_version,
                    format_time(&e.occurred_at),
                    format_time(&e.recorded_at),
                    e.recorded_by,
                    e.actor,
                    e.source,
                    record.raw.data,
                    links,
                    record.digest.as_slice(),
                    leaf.0.as_slice(),
                ])?;
                last_recorded_at = last_recorded_at.max(e.recorded_at);
            }
            self.recent.save(&tx).map_err(|e| StoreError::Storage(e.to_string()))
        })();
        let written = written.and_then(|()| tx.commit().map_err(StoreError::from));
        if let Err(e) = written {
            // Rolled back (dropping the transaction): forget the window of
            // recent tree hashes altogether (a cache; the database has the
            // rest), which cannot leave it pointing past what is stored.
            self.recent = RecentHashes::default();
            return Err(e);
        }
        self.next_seq += records.len() as u64;
        self.next_stream_id = next_stream_id;
        self.streams.extend(streams);
        self.ids.extend(ids);
        self.last_recorded_at = last_recorded_at;
        self.head.send_replace(self.next_seq.checked_sub(1));
        Ok(())
    }

    /// Commit a group; whether anything was written.
    fn commit_group(&mut self, group: Vec<AppendRequest>) -> bool {
        // recordedAt never goes backwards along seq, even if the clock does.
        // Microseconds: what every backend's timestamp type can hold, so a
        // ledger moved between stores keeps its records byte for byte.
        let recorded_at = Utc::now().trunc_subsecs(6).max(self.last_recorded_at);
        let recorded_at_text = format_time(&recorded_at);
        let mut pending = Pending {
            next_seq: self.next_seq,
            next_stream_id: self.next_stream_id,
            streams: HashMap::new(),
            ids: HashMap::new(),
        };
        let mut answers = Vec::with_capacity(group.len());

        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let err = AppendError::Storage(format!("cannot begin a transaction: {e}"));
                for request in group {
                    let _ = request.reply.send(Err(err.clone()));
                }
                return false;
            }
        };
        // Each request is checked in full before any of its rows is written,
        // so a refused request leaves nothing behind and needs no savepoint.
        // A failed write, though, spoils the whole group's transaction.
        let mut broken: Option<AppendError> = None;
        for request in group {
            let result = match &broken {
                Some(err) => Err(err.clone()),
                None => {
                    plan(&tx, &request, recorded_at, &mut pending, &self.streams, &self.ids).and_then(|mut plan| {
                        write(&tx, &mut self.recent, &request, &mut plan, &recorded_at_text)
                            .inspect_err(|err| broken = Some(err.clone()))?;
                        Ok(plan.into_iter().map(|p| p.receipt).collect())
                    })
                }
            };
            answers.push((request.reply, result));
        }
        let unsaved = self.recent.unsaved;
        if broken.is_none() {
            if let Err(err) = self.recent.save(&tx) {
                broken = Some(err);
            }
        }
        if let Some(err) = broken {
            drop(tx); // rolls back
            self.recent.forget_unsaved();
            tracing::error!(error = %err, "a write failed; nothing of its group was recorded");
            for (reply, _) in answers {
                let _ = reply.send(Err(err.clone()));
            }
            return false;
        }

        match tx.commit() {
            Ok(()) => {
                let appended = pending.next_seq > self.next_seq;
                self.next_seq = pending.next_seq;
                self.next_stream_id = pending.next_stream_id;
                self.streams.extend(pending.streams);
                self.ids.extend(pending.ids);
                self.last_recorded_at = recorded_at;
                if appended {
                    self.head.send_replace(self.next_seq.checked_sub(1));
                }
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
                appended
            }
            Err(e) => {
                // What `save` wrote was rolled back with the rest.
                self.recent.unsaved = unsaved;
                self.recent.forget_unsaved();
                tracing::error!(error = %e, "group commit failed; nothing of it was recorded");
                let err = AppendError::Storage(format!("commit failed: {e}"));
                for (reply, _) in answers {
                    let _ = reply.send(Err(err.clone()));
                }
                false
            }
        }
    }
}

/// Copy the WAL into the database after commits, at most every 200 ms, with
/// a PASSIVE checkpoint that never blocks the writer; truncate the WAL when
/// the store closes.
fn checkpointer(conn: &Connection, commits: &std::sync::mpsc::Receiver<()>) {
    let checkpoint = |mode: &str| {
        if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!(error = %e, mode, "wal checkpoint failed");
        }
    };
    while commits.recv().is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        while commits.try_recv().is_ok() {}
        checkpoint("PASSIVE");
    }
    checkpoint("TRUNCATE");
}

/// One event of a request once checked: its receipt, and, for a new event,
/// its stream's number (and whether that stream is new).
struct Planned {
    receipt: Receipt,
    new: Option<(i64, bool)>,
    /// For a repeat of a new event of the same request: that event's index.
    same_as: Option<usize>,
}

/// Check a request against the ledger (and the requests before it in the
/// group) and give each new event its seq and stream version. Nothing is
/// written; on success `pending` takes the request's changes.
fn plan(
    tx: &rusqlite::Transaction<'_>,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
    pending: &mut Pending,
    streams: &HashMap<String, StreamTip>,
    ids: &HashMap<Uuid, u64>,
) -> Result<Vec<Planned>, AppendError> {
    let mut planned: Vec<Planned> = Vec::with_capacity(request.events.len());
    // New events of this request by id, to catch an id sent twice in one batch.
    let mut fresh: HashMap<Uuid, usize> = HashMap::new();
    let mut tips: HashMap<&str, StreamTip> = HashMap::new();
    let mut next_seq = pending.next_seq;
    let mut next_stream_id = pending.next_stream_id;
    for (index, event) in request.events.iter().enumerate() {
        if let Some(&first) = fresh.get(&event.id) {
            let same = request.events.get(first).is_some_and(|e| e.digest == event.digest);
            match (same, planned.get(first)) {
                (true, Some(p)) => {
                    let receipt = Receipt { duplicate: true, ..p.receipt.clone() };
                    planned.push(Planned { receipt, new: None, same_as: Some(first) });
                    continue;
                }
                _ => return Err(AppendError::IdRepeated { index, first, id: event.id }),
            }
        }
        if let Some(&seq) = pending.ids.get(&event.id).or_else(|| ids.get(&event.id)) {
            let (receipt, digest) = recorded_receipt(tx, seq)?;
            if digest.as_slice() != event.digest.as_slice() {
                return Err(AppendError::IdConflict { index, id: event.id });
            }
            planned.push(Planned { receipt, new: None, same_as: None });
            continue;
        }

        let stream = event.stream.as_str();
        let tip = tips.get(stream).or_else(|| pending.streams.get(stream)).or_else(|| streams.get(stream)).copied();
        if let Some(expected) = event.expected_version {
            if !expected.matches(tip.map(|t| t.version)) {
                return Err(AppendError::VersionConflict {
                    index,
                    id: event.id,
                    stream: stream.to_owned(),
                    expected: expected.as_i64(),
                    current: tip.map(|t| t.version),
                });
            }
        }
        let (stream_id, version, new_stream) = match tip {
            Some(t) => (t.stream_id, t.version + 1, false),
            None => {
                next_stream_id += 1;
                (next_stream_id - 1, 0, true)
            }
        };
        tips.insert(stream, StreamTip { stream_id, version });
        fresh.insert(event.id, index);
        let receipt = Receipt {
            id: event.id,
            seq: next_seq,
            stream: stream.to_owned(),
            stream_version: version,
            recorded_at,
            leaf_hash: Hash([0; 32]),
            duplicate: false,
        };
        planned.push(Planned { receipt, new: Some((stream_id, new_stream)), same_as: None });
        next_seq += 1;
    }
    for (event, p) in request.events.iter().zip(&planned) {
        if p.new.is_some() {
            pending.ids.insert(event.id, p.receipt.seq);
        }
    }
    pending.next_seq = next_seq;
    pending.next_stream_id = next_stream_id;
    for (stream, tip) in tips {
        pending.streams.insert(stream.to_owned(), tip);
    }
    Ok(planned)
}

/// The original receipt of the event at `seq`, and its content digest.
fn recorded_receipt(tx: &rusqlite::Transaction<'_>, seq: u64) -> Result<(Receipt, Vec<u8>), AppendError> {
    let mut find = tx.prepare_cached(&format!(
        "SELECT e.id, s.name, e.stream_version, e.recorded_at, e.digest, e.leaf_hash FROM {FROM} WHERE e.seq = ?1"
    ))?;
    let (id, stream, stream_version, at, digest, leaf) = find.query_row([seq], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Vec<u8>>(4)?,
            r.get::<_, Option<Vec<u8>>>(5)?,
        ))
    })?;
    let unreadable =
        |what: String| AppendError::Storage(format!("the stored event at seq {seq} is unreadable: {what}"));
    let id = Uuid::parse_str(&id).map_err(|e| unreadable(format!("id: {e}")))?;
    let recorded_at =
        DateTime::parse_from_rfc3339(&at).map_err(|e| unreadable(format!("recordedAt: {e}")))?.with_timezone(&Utc);
    let leaf_hash =
        leaf.and_then(|l| <[u8; 32]>::try_from(l).ok()).map(Hash).ok_or_else(|| unreadable("no leaf hash".into()))?;
    Ok((Receipt { id, seq, stream, stream_version, recorded_at, leaf_hash, duplicate: true }, digest))
}

/// Write a planned request's new streams and events, and their leaves into
/// the Merkle tree; fills in the receipts' leaf hashes.
fn write(
    tx: &rusqlite::Transaction<'_>,
    recent: &mut RecentHashes,
    request: &AppendRequest,
    plan: &mut [Planned],
    recorded_at_text: &str,
) -> Result<(), AppendError> {
    let mut insert_stream = tx.prepare_cached("INSERT INTO streams (stream_id, name) VALUES (?1, ?2)")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (seq, id, type, stream_id, stream_version, occurred_at, recorded_at, recorded_by, actor, source, data, links, digest, leaf_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    for i in 0..plan.len() {
        let (Some(event), Some(row), Some(planned)) = (request.events.get(i), request.rows.get(i), plan.get(i)) else {
            break;
        };
        if let Some(first) = planned.same_as {
            let leaf = plan.get(first).map(|p| p.receipt.leaf_hash);
            if let (Some(leaf), Some(p)) = (leaf, plan.get_mut(i)) {
                p.receipt.leaf_hash = leaf;
            }
            continue;
        }
        let Some((stream_id, new_stream)) = planned.new else { continue };
        let leaf = row
            .leaf
            .leaf(planned.receipt.seq, planned.receipt.stream_version, recorded_at_text)
            .map_err(|e| AppendError::Storage(e.to_string()))?;
        append_leaf(tx, recent, planned.receipt.seq, leaf)?;
        if new_stream {
            insert_stream.execute(params![stream_id, planned.receipt.stream])?;
        }
        insert.execute(params![
            planned.receipt.seq,
            row.id,
            event.event_type.as_str(),
            stream_id,
            planned.receipt.stream_version,
            row.occurred_at,
            recorded_at_text,
            request.recorded_by,
            event.actor.as_str(),
            event.source,
            row.data,
            row.links,
            event.digest.as_slice(),
            leaf.0.as_slice(),
        ])?;
        if let Some(p) = plan.get_mut(i) {
            p.receipt.leaf_hash = leaf;
        }
    }
    Ok(())
}

/// Add leaf `seq` to the stored tree: its hash and the subtrees it completes.
/// The hashes go to `recent`; [`RecentHashes::save`] writes them with the
/// rest of their transaction.
fn append_leaf(conn: &Connection, recent: &mut RecentHashes, seq: u64, leaf: Hash) -> Result<(), AppendError> {
    let hashes = stored_hashes_for_record_hash(seq, leaf, &CachedHashes { recent, conn })
        .map_err(|e| AppendError::Storage(format!("the stored Merkle tree is incomplete at seq {seq}: {e}")))?;
    recent.extend(stored_hash_index(0, seq), &hashes);
    Ok(())
}

/// The stored tree, read through a connection.
struct StoredHashes<'c>(&'c Connection);

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let mut stmt = self.0.prepare_cached(READ_HASH).map_err(|_| TreeError::IndexesNotInTree)?;
        indexes.iter().map(|i| read_stored(&mut stmt, *i)).collect()
    }
}

/// Stored hash `?1`, cut from the last row that starts at or before it.
const READ_HASH: &str = "SELECT substr(hashes, (?1 - first_idx) * 32 + 1, 32) FROM tree_hashes \
                         WHERE first_idx <= ?1 ORDER BY first_idx DESC LIMIT 1";

fn read_stored(stmt: &mut rusqlite::CachedStatement<'_>, idx: u64) -> Result<Hash, TreeError> {
    let bytes: Vec<u8> = stmt.query_row([idx], |r| r.get(0)).map_err(|_| TreeError::IndexesNotInTree)?;
    // A row too short to hold idx yields fewer than 32 bytes: not stored.
    <[u8; 32]>::try_from(bytes).map(Hash).map_err(|_| TreeError::IndexesNotInTree)
}

/// Stored hashes per `tree_hashes` row: 8 KiB.
const HASHES_PER_ROW: usize = 256;

/// How many of the latest stored hashes the writer keeps at hand.
const RECENT_HASHES: usize = 1 << 16;

/// The latest stored hashes. They are written at consecutive indexes, and
/// the next appends read mostly the latest ones (the subtrees they
/// complete), so a window of them spares the writer most tree reads.
#[derive(Default)]
struct RecentHashes {
    first: u64,
    hashes: std::collections::VecDeque<Hash>,
    /// Hashes from this index on are not in the database yet.
    unsaved: u64,
}

impl RecentHashes {
    fn get(&self, idx: u64) -> Option<Hash> {
        let offset = usize::try_from(idx.checked_sub(self.first)?).ok()?;
        self.hashes.get(offset).copied()
    }

    fn end(&self) -> u64 {
        self.first + self.hashes.len() as u64
    }

    fn extend(&mut self, first: u64, hashes: &[Hash]) {
        if first != self.end() {
            self.hashes.clear();
            self.first = first;
            self.unsaved = first;
        }
        self.hashes.extend(hashes.iter().copied());
        while self.hashes.len() > RECENT_HASHES && self.first < self.unsaved {
            self.hashes.pop_front();
            self.first += 1;
        }
    }

    /// Write the unsaved hashes, inside the caller's transaction, in rows of
    /// at most [`HASHES_PER_ROW`] (a read cuts one hash out of one row).
    fn save(&mut self, conn: &Connection) -> Result<(), AppendError> {
        let end = self.end();
        let skip = usize::try_from(self.unsaved.saturating_sub(self.first)).unwrap_or(usize::MAX);
        let unsaved: Vec<&Hash> = self.hashes.iter().skip(skip).collect();
        let mut insert = conn.prepare_cached("INSERT INTO tree_hashes (first_idx, hashes) VALUES (?1, ?2)")?;
        for (i, row) in unsaved.chunks(HASHES_PER_ROW).enumerate() {
            let blob: Vec<u8> = row.iter().flat_map(|h| h.0).collect();
            insert.execute(params![self.unsaved + (i * HASHES_PER_ROW) as u64, blob])?;
        }
        self.unsaved = end;
        Ok(())
    }

    /// Forget the unsaved hashes (the transaction that made them failed).
    fn forget_unsaved(&mut self) {
        let keep = usize::try_from(self.unsaved.saturating_sub(self.first)).unwrap_or(usize::MAX);
        self.hashes.truncate(keep);
    }
}

/// Recent hashes first, the database for the rest.
struct CachedHashes<'a> {
    recent: &'a RecentHashes,
    conn: &'a Connection,
}

impl HashReader for CachedHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        let mut stmt = None;
        indexes
            .iter()
            .map(|&i| match self.recent.get(i) {
                Some(h) => Ok(h),
                None => {
                    if stmt.is_none() {
                        stmt = Some(self.conn.prepare_cached(READ_HASH).map_err(|_| TreeError::IndexesNotInTree)?);
                    }
                    match stmt.as_mut() {
                        Some(stmt) => read_stored(stmt, i),
                        None => Err(TreeError::IndexesNotInTree),
                    }
                }
            })
            .collect()
    }
}

/// A row as stored, before its columns are checked.
pub(crate) struct RawRow {
    pub(crate) seq: u64,
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) stream: String,
    pub(crate) stream_version: u64,
    pub(crate) occurred_at: String,
    pub(crate) recorded_at: String,
    pub(crate) recorded_by: String,
    pub(crate) actor: String,
    pub(crate) source: Option<String>,
    pub(crate) data: String,
    pub(crate) links: Option<String>,
    pub(crate) leaf_hash: Option<Vec<u8>>,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        event_type: r.get(2)?,
        stream: r.get(3)?,
        stream_version: r.get(4)?,
        occurred_at: r.get(5)?,
        recorded_at: r.get(6)?,
        recorded_by: r.get(7)?,
        actor: r.get(8)?,
        source: r.get(9)?,
        data: r.get(10)?,
        links: r.get(11)?,
        leaf_hash: r.get(12)?,
    })
}

impl RawRow {
    pub(crate) fn into_event(self) -> Result<RecordedEvent, StoreError> {
        let seq = self.seq;
        let (mut event, data) = self.into_raw()?;
        event.data =
            serde_json::from_str(&data).map_err(|e| StoreError::Corrupt { seq, problem: format!("data: {e}") })?;
        Ok(event)
    }

    /// The event with `data` left as its JSON text.
    pub(crate) fn into_raw(self) -> Result<(RecordedEvent, String), StoreError> {
        let seq = self.seq;
        let corrupt = |problem: String| StoreError::Corrupt { seq, problem };
        // RFC 3339 as written; a signed year as chrono writes years outside
        // 0..=9999 (refused at the edge now, but never unreadable).
        let time = |field: &str, t: &str| {
            DateTime::parse_from_rfc3339(t)
                .or_else(|_| t.parse::<DateTime<chrono::FixedOffset>>())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt(format!("{field} {t:?}: {e}")))
        };
        let event = RecordedEvent {
            seq,
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt(format!("id {:?}: {e}", self.id)))?,
            event_type: EventType::parse(&self.event_type)
                .ok_or_else(|| corrupt(format!("unknown type {:?}", self.event_type)))?,
            stream: self.stream,
            stream_version: self.stream_version,
            occurred_at: time("occurredAt", &self.occurred_at)?,
            recorded_at: time("recordedAt", &self.recorded_at)?,
            recorded_by: self.recorded_by,
            actor: self.actor,
            source: self.source,
            data: Value::Null,
            links: match self.links {
                None => Vec::new(),
                Some(l) => serde_json::from_str(&l).map_err(|e| corrupt(format!("links: {e}")))?,
            },
            leaf_hash: match self.leaf_hash {
                None => None,
                Some(l) => {
                    Some(Hash(<[u8; 32]>::try_from(l).map_err(|_| corrupt("leaf hash is not 32 bytes".into()))?))
                }
            },
        };
        Ok((event, self.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_store_contract() {
        crate::contract::run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("ledger.db")).unwrap();
            (store, dir)
        })
        .await;
    }

    #[tokio::test]
    async fn reopening_keeps_events_and_stream_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let store = SqliteStore::open(&path).unwrap();
        let first = crate::contract::deployments(3, "checkout");
        let receipts = store.append(first.clone(), "test").await.unwrap();
        assert_eq!(receipts.last().unwrap().stream_version, 2);
        store.close().await;

        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(*store.head().borrow(), Some(2));
        // The id index is rebuilt: a late retry is still a duplicate.
        let retry = store.append(vec![first[1].clone()], "test").await.unwrap();
        assert_eq!((retry[0].seq, retry[0].duplicate, retry[0].recorded_at), (1, true, receipts[1].recorded_at));
        let more = store.append(crate::contract::deployments(1, "checkout"), "test").await.unwrap();
        assert_eq!((more[0].seq, more[0].stream_version), (3, 3));
        store.close().await;
    }

    #[tokio::test]
    async fn a_ledger_copied_in_keeps_every_record_root_and_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let source = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let mut sent = Vec::new();
        for n in 0..6 {
            let batch = crate::contract::deployments(n + 1, &format!("svc-{}", n % 2));
            source.append(batch.clone(), "ci-main").await.unwrap();
            sent.extend(batch);
        }
        let records = source.read_records(None, 1_000).await.unwrap();
        let copy = SqliteStore::open(&dir.path().join("b.db")).unwrap();
        copy.import(records[..8].to_vec()).await.unwrap();
        // Out of order, forged, or breaking a stream: refused, nothing written.
        let err = copy.import(records[9..].to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("next seq is 8"), "{err}");
        let mut forged = records[8].clone();
        forged.raw.event.recorded_by = "someone-else".into();
        let err = copy.import(vec![forged]).await.unwrap_err();
        assert!(err.to_string().contains("does not hash to its stored leaf"), "{err}");
        // Refused by the writer part-way (a repeated id after good records):
        // nothing of it stays, not even in the writer's tree cache.
        let mut repeated = records[8..11].to_vec();
        repeated[2].raw.event.id = records[0].raw.event.id;
        let mut full = repeated[2].raw.event.clone();
        full.data = serde_json::from_str(&repeated[2].raw.data).unwrap();
        repeated[2].raw.event.leaf_hash = Some(shiplog_core::merkle::leaf_hash(&full).unwrap());
        let err = copy.import(repeated).await.unwrap_err();
        assert!(err.to_string().contains("recorded twice"), "{err}");
        assert_eq!(*copy.head().borrow(), Some(7));
        copy.import(records[8..].to_vec()).await.unwrap();
        assert_eq!(copy.read_records(None, 1_000).await.unwrap(), records);
        assert_eq!(*copy.head().borrow(), Some(20));
        for size in [1, 8, 21] {
            assert_eq!(crate::tree::root(&copy, size).await.unwrap(), crate::tree::root(&source, size).await.unwrap());
        }
        // The writer knows the copied ids and streams: retries are
        // duplicates, and appends continue both orders.
        let retry = copy.append(vec![sent[4].clone()], "x").await.unwrap();
        assert_eq!((retry[0].seq, retry[0].duplicate), (4, true));
        let more = copy.append(crate::contract::deployments(1, "svc-1"), "ci-main").await.unwrap();
        assert_eq!((more[0].seq, more[0].stream_version), (21, 12));
        copy.close().await;
        // And after a restart, the file audits.
        let reopened = SqliteStore::open(&dir.path().join("b.db")).unwrap();
        assert!(crate::tree::audit(&reopened, |_| {}).await.unwrap().verdict.is_ok());
        reopened.close().await;
        source.close().await;
    }

    #[tokio::test]
    async fn appends_after_close_are_refused_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("ledger.db")).unwrap();
        store.close().await;
        let err = store.append(crate::contract::deployments(1, "x"), "test").await.unwrap_err();
        assert!(matches!(err, AppendError::Unavailable(_)), "{err:?}");
        assert!(store.check().await.is_err());
    }
}
