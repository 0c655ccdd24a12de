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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Savepoint, params};
use shiplog_core::event::format_time;
use shiplog_core::{EventType, NewEvent, Receipt, RecordedEvent};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::{AppendError, EventStore, MAX_READ_LIMIT, ReadQuery, StoreError};

/// The migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/sqlite/0001_events.sql")];

/// Most events one group commit takes; more wait for the next one.
const MAX_GROUP_EVENTS: usize = 50_000;
/// Appends that may wait for the writer before callers feel back-pressure.
const QUEUE_DEPTH: usize = 4_096;
const READERS: usize = 4;

const COLUMNS: &str =
    "seq, id, type, stream, stream_version, occurred_at, recorded_at, recorded_by, actor, source, data, links";

struct AppendRequest {
    events: Vec<NewEvent>,
    recorded_by: String,
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// The SQLite ledger. Cheap to share: clone the `Arc` it lives in.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    queue: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    head: watch::Receiver<Option<u64>>,
}

impl SqliteStore {
    /// Open (creating if need be) the ledger file at `path`, bring its
    /// schema up to date, and start the writer.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5_000)?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        migrate(&mut conn)?;

        let next_seq: u64 = conn.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        let mut streams = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT stream, MAX(stream_version) FROM events GROUP BY stream")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
            for row in rows {
                let (stream, version) = row?;
                streams.insert(stream, version);
            }
        }
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
        let writer = Writer { conn, next_seq, streams, last_recorded_at, head: head_tx };
        let handle = std::thread::Builder::new()
            .name("shiplog-writer".into())
            .spawn(move || writer.run(queue_rx))
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

    fn queue(&self) -> Option<mpsc::Sender<AppendRequest>> {
        self.inner.queue.lock().ok().and_then(|q| q.clone())
    }
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, events: Vec<NewEvent>, recorded_by: &str) -> Result<Vec<Receipt>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let queue = self.queue().ok_or_else(|| AppendError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest { events, recorded_by: recorded_by.to_owned(), reply };
        queue.send(request).await.map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
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
                    (format!("SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"), vec![&after, &limit])
                }
                (Some(stream), None) => (
                    format!("SELECT {COLUMNS} FROM events WHERE stream = ?3 AND seq > ?1 ORDER BY stream_version LIMIT ?2"),
                    vec![&after, &limit, stream],
                ),
                (None, Some(t)) => (
                    format!("SELECT {COLUMNS} FROM events WHERE type = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2"),
                    vec![&after, &limit, t],
                ),
                (Some(stream), Some(t)) => (
                    format!(
                        "SELECT {COLUMNS} FROM events WHERE stream = ?3 AND type = ?4 AND seq > ?1 ORDER BY stream_version LIMIT ?2"
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
                "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![stream, from, limit], raw_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(RawRow::into_event)).collect()
        })
        .await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let stream = stream.to_owned();
        self.with_reader(move |conn| {
            let v: Option<u64> =
                conn.query_row("SELECT MAX(stream_version) FROM events WHERE stream = ?1", [stream], |r| r.get(0))?;
            Ok(v)
        })
        .await
    }

    fn head(&self) -> watch::Receiver<Option<u64>> {
        self.inner.head.clone()
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
    conn: Connection,
    next_seq: u64,
    /// Current version of every stream.
    streams: HashMap<String, u64>,
    last_recorded_at: DateTime<Utc>,
    head: watch::Sender<Option<u64>>,
}

/// What a request added, kept apart until its group commits.
#[derive(Default)]
struct Pending {
    next_seq: u64,
    streams: HashMap<String, u64>,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<AppendRequest>) {
        while let Some(first) = queue.blocking_recv() {
            let mut count = first.events.len();
            let mut group = vec![first];
            while count < MAX_GROUP_EVENTS {
                match queue.try_recv() {
                    Ok(request) => {
                        count += request.events.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::info!(events = self.next_seq, "sqlite writer stopped");
    }

    fn commit_group(&mut self, group: Vec<AppendRequest>) {
        // recordedAt never goes backwards along seq, even if the clock does.
        // Microseconds: what every backend's timestamp type can hold, so a
        // ledger moved between stores keeps its records byte for byte.
        let recorded_at = Utc::now().trunc_subsecs(6).max(self.last_recorded_at);
        let recorded_at_text = format_time(&recorded_at);
        let mut group_pending = Pending { next_seq: self.next_seq, streams: HashMap::new() };
        let mut answers = Vec::with_capacity(group.len());

        let mut tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let err = AppendError::Storage(format!("cannot begin a transaction: {e}"));
                for request in group {
                    let _ = request.reply.send(Err(err.clone()));
                }
                return;
            }
        };
        let mut appended = 0usize;
        for request in group {
            let mut pending = Pending { next_seq: group_pending.next_seq, streams: HashMap::new() };
            let result = tx.savepoint().map_err(AppendError::from).and_then(|mut sp| {
                let receipts = append_request(
                    &mut sp,
                    &request,
                    recorded_at,
                    &recorded_at_text,
                    &mut pending,
                    &group_pending,
                    &self.streams,
                )?;
                sp.commit()?;
                Ok(receipts)
            });
            if result.is_ok() {
                appended += usize::try_from(pending.next_seq - group_pending.next_seq).unwrap_or(0);
                group_pending.next_seq = pending.next_seq;
                group_pending.streams.extend(pending.streams);
            }
            answers.push((request.reply, result));
        }

        match tx.commit() {
            Ok(()) => {
                self.next_seq = group_pending.next_seq;
                self.streams.extend(group_pending.streams);
                self.last_recorded_at = recorded_at;
                if appended > 0 {
                    self.head.send_replace(self.next_seq.checked_sub(1));
                }
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; nothing of it was recorded");
                let err = AppendError::Storage(format!("commit failed: {e}"));
                for (reply, result) in answers {
                    let _ = reply.send(result.and(Err(err.clone())));
                }
            }
        }
    }
}

/// Append one request's events inside its savepoint.
fn append_request(
    sp: &mut Savepoint<'_>,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
    recorded_at_text: &str,
    pending: &mut Pending,
    group: &Pending,
    committed: &HashMap<String, u64>,
) -> Result<Vec<Receipt>, AppendError> {
    let mut receipts = Vec::with_capacity(request.events.len());
    let mut find =
        sp.prepare_cached("SELECT seq, stream, stream_version, recorded_at, digest FROM events WHERE id = ?1")?;
    let mut insert = sp.prepare_cached(
        "INSERT INTO events (seq, id, type, stream, stream_version, occurred_at, recorded_at, recorded_by, actor, source, data, links, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for (index, event) in request.events.iter().enumerate() {
        let id = event.id.hyphenated().to_string();
        let existing = find
            .query_row([&id], |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            })
            .optional()?;
        if let Some((seq, stream, stream_version, at, digest)) = existing {
            if digest.as_slice() != event.digest.as_slice() {
                return Err(AppendError::IdConflict { index, id: event.id });
            }
            let recorded_at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| AppendError::Storage(format!("stored recordedAt of seq {seq} is unreadable: {e}")))?
                .with_timezone(&Utc);
            receipts.push(Receipt { id: event.id, seq, stream, stream_version, recorded_at, duplicate: true });
            continue;
        }

        let stream = event.stream.as_str();
        let current = pending
            .streams
            .get(stream)
            .or_else(|| group.streams.get(stream))
            .or_else(|| committed.get(stream))
            .copied();
        if let Some(expected) = event.expected_version {
            if !expected.matches(current) {
                return Err(AppendError::VersionConflict {
                    index,
                    id: event.id,
                    stream: stream.to_owned(),
                    expected: expected.as_i64(),
                    current,
                });
            }
        }
        let version = current.map_or(0, |v| v + 1);
        let seq = pending.next_seq;
        let data = serde_json::to_string(&event.data).map_err(|e| AppendError::Storage(e.to_string()))?;
        let links = if event.links.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&event.links).map_err(|e| AppendError::Storage(e.to_string()))?)
        };
        insert.execute(params![
            seq,
            id,
            event.event_type.as_str(),
            stream,
            version,
            format_time(&event.occurred_at),
            recorded_at_text,
            request.recorded_by,
            event.actor.as_str(),
            event.source,
            data,
            links,
            event.digest.as_slice(),
        ])?;
        pending.streams.insert(stream.to_owned(), version);
        pending.next_seq += 1;
        receipts.push(Receipt {
            id: event.id,
            seq,
            stream: stream.to_owned(),
            stream_version: version,
            recorded_at,
            duplicate: false,
        });
    }
    Ok(receipts)
}

/// A row as stored, before its columns are checked.
struct RawRow {
    seq: u64,
    id: String,
    event_type: String,
    stream: String,
    stream_version: u64,
    occurred_at: String,
    recorded_at: String,
    recorded_by: String,
    actor: String,
    source: Option<String>,
    data: String,
    links: Option<String>,
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
    })
}

impl RawRow {
    fn into_event(self) -> Result<RecordedEvent, StoreError> {
        let seq = self.seq;
        let corrupt = |problem: String| StoreError::Corrupt { seq, problem };
        let time = |field: &str, t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt(format!("{field} {t:?}: {e}")))
        };
        Ok(RecordedEvent {
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
            data: serde_json::from_str(&self.data).map_err(|e| corrupt(format!("data: {e}")))?,
            links: match self.links {
                None => Vec::new(),
                Some(l) => serde_json::from_str(&l).map_err(|e| corrupt(format!("links: {e}")))?,
            },
        })
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
        let receipts = store.append(crate::contract::deployments(3, "checkout"), "test").await.unwrap();
        assert_eq!(receipts.last().unwrap().stream_version, 2);
        store.close().await;

        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(*store.head().borrow(), Some(2));
        let more = store.append(crate::contract::deployments(1, "checkout"), "test").await.unwrap();
        assert_eq!((more[0].seq, more[0].stream_version), (3, 3));
        store.close().await;
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
