//! The ledger on PostgreSQL, for when one machine is not enough.
//!
//! **One global order across processes.** Every append is one transaction
//! that first takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`), then reads the ledger's tip, checks the batch
//! (ids, expected versions), writes its events and their Merkle hashes, and
//! commits, which releases the lock. Appends from every shiplog process on
//! the database are therefore serialised by PostgreSQL itself: the next
//! `seq` is always the last committed one plus one, so seqs stay gap-free
//! whichever process writes, and a process that dies mid-append holds
//! nothing (its transaction and lock end with its connection). There is no
//! leader to elect and no fencing token to check: the lock *is* the
//! fence, and the primary keys on `seq` and `(stream, stream_version)`
//! would refuse a write that ever slipped past it.
//!
//! **Group commit.** Within a process, appends queue for one writer task,
//! which takes every request waiting, checks each in turn against the
//! ledger and the requests before it (`plan.rs`; a refused request does not
//! fail its neighbours), and writes the group in one locked transaction: one
//! lock round-trip and one WAL flush for many appends.
//!
//! **Followers.** Each commit sends `NOTIFY shiplog_appended` with its last
//! seq; every process LISTENs and moves its `head` on, and also asks the
//! database for the tip every second, so a missed notification (a dropped
//! connection) delays a follower by at most that.
//!
//! Records are kept as the text shiplog wrote (times, data, links), as in
//! the SQLite store, so a ledger moved between stores keeps every leaf hash.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shiplog_core::event::format_time;
use shiplog_core::merkle::{
    Hash, HashReader, LeafTemplate, TreeError, indexes_read_by, stored_hash_index, stored_hashes_for_record_hash,
};
use shiplog_core::{EventType, NewEvent, Receipt, RecordedEvent};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, Row, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::plan::{Group, Recorded};
use crate::sqlite::RawRow;
use crate::{AppendError, EventStore, MAX_READ_LIMIT, RawEvent, ReadQuery, StoreError, StoredCheckpoint};

/// The migrations, in order; `shiplog_migrations` records which ran.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/postgres/0001_ledger.sql")];

/// The advisory lock every append holds while it writes ("shiplog" in ASCII).
const APPEND_LOCK: i64 = 0x0073_6869_706c_6f67;
/// The advisory lock migrations hold, so that processes starting together
/// migrate once.
const MIGRATE_LOCK: i64 = APPEND_LOCK + 1;
/// How long an append waits for another process's append to finish.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long one group's transaction may take in all, lock wait included.
const GROUP_WAIT: Duration = Duration::from_secs(25);
/// The channel commits are announced on.
const CHANNEL: &str = "shiplog_appended";
/// How often a follower asks for the tip when no notification came.
const POLL: Duration = Duration::from_secs(1);

const COLUMNS: &str = "seq, id::text, type, stream, stream_version, occurred_at, recorded_at, recorded_by, \
                       actor, source, data, links, leaf_hash";

/// The PostgreSQL ledger. Cheap to share: clone the `Arc` it lives in.
pub struct PostgresStore {
    inner: Arc<Inner>,
    /// Appends wait here for this process's writer (group commit).
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    pool: PgPool,
    /// Where it is, without a password: for messages.
    location: String,
    head: watch::Receiver<Option<u64>>,
    head_tx: Arc<watch::Sender<Option<u64>>>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When the tip was last confirmed.
    synced: Arc<Mutex<std::time::Instant>>,
    closed: AtomicBool,
    commit_sizes: Mutex<crate::metrics::Histogram>,
}

/// An append waiting for the writer.
struct Request {
    events: Vec<NewEvent>,
    leaves: Vec<LeafTemplate>,
    recorded_by: String,
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// Most events one group writes (requests are never split).
const MAX_GROUP_EVENTS: usize = 10_000;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut f) = self.follower.lock() {
            if let Some(f) = f.take() {
                f.abort();
            }
        }
    }
}

/// A connection URL with its password masked, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:****{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Make an empty database `name` (lower-case letters, digits, `_`) on the
/// server `server` names (a URL of any database there); its URL.
pub async fn create_database(server: &str, name: &str) -> Result<String, StoreError> {
    on_server(server, name, "CREATE DATABASE", "").await?;
    let base = server.split('?').next().unwrap_or(server);
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Drop a database [`create_database`] made.
pub async fn drop_database(server: &str, name: &str) -> Result<(), StoreError> {
    on_server(server, name, "DROP DATABASE IF EXISTS", " WITH (FORCE)").await
}

/// Run `{verb} {name}{options}` on the server `server` names.
async fn on_server(server: &str, name: &str, verb: &str, options: &str) -> Result<(), StoreError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(StoreError::Storage(format!("{name:?} is not a database name shiplog makes")));
    }
    let admin = PgPool::connect(server)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to {}: {e}", redact(server))))?;
    let done = admin.execute(format!("{verb} {name}{options}").as_str()).await;
    admin.close().await;
    done.map(|_| ()).map_err(store_error)
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user:password@host:port/database`),
    /// create or migrate the schema, and start following the ledger's tip.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let location = redact(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Storage(format!(
                "{location} is not a PostgreSQL URL ({e}); give postgres://user:password@host:5432/database"
            ))
        })?;
        let options = options.application_name("shiplog");
        let pool = match PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            // The pool keeps retrying and then says only that it timed
            // out: one direct attempt names the cause (refused, no such
            // host, authentication failed, no such database, …).
            Err(sqlx::Error::PoolTimedOut) => {
                let cause = match sqlx::ConnectOptions::connect(&options).await {
                    Err(e) => e.to_string(),
                    Ok(conn) => {
                        let _ = sqlx::Connection::close(conn).await;
                        "it took longer than 5 s to answer".to_owned()
                    }
                };
                return Err(StoreError::Unavailable(format!("cannot connect to {location}: {cause}")));
            }
            Err(e) => return Err(StoreError::Unavailable(format!("cannot connect to {location}: {e}"))),
        };
        migrate(&pool, &location).await?;
        let tip = tip(&pool).await?;
        let (head_tx, head) = watch::channel(tip);
        let head_tx = Arc::new(head_tx);
        let synced = Arc::new(Mutex::new(std::time::Instant::now()));
        let follower = tokio::spawn(follow_head(pool.clone(), Arc::clone(&head_tx), Arc::clone(&synced)));
        let inner = Arc::new(Inner {
            pool,
            location,
            head,
            head_tx,
            follower: Mutex::new(Some(follower)),
            synced,
            closed: AtomicBool::new(false),
            commit_sizes: Mutex::new(crate::metrics::Histogram::new(crate::metrics::EVENTS)),
        });
        let (tx, rx) = mpsc::channel(1024);
        let writer = tokio::spawn(writer(Arc::clone(&inner), rx));
        Ok(PostgresStore { inner, queue: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)) })
    }

    /// Where the store is, without its password.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    fn open_for_appends(&self) -> Result<(), AppendError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(AppendError::Unavailable("the store is shutting down".into()));
        }
        Ok(())
    }

    async fn fetch(&self, sql: &str, binds: Binds<'_>) -> Result<Vec<RawRow>, StoreError> {
        let mut query = sqlx::query(sql);
        for b in binds.0 {
            query = match b {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.inner.pool).await.map_err(store_error)?;
        rows.iter().map(raw_row).collect()
    }
}

impl Inner {
    /// A transaction holding the append lock: until it ends, no other
    /// process (or task) writes events.
    async fn begin_writing(&self) -> Result<Transaction<'static, Postgres>, AppendError> {
        let mut tx = self.pool.begin().await.map_err(append_error)?;
        // Never wait for ever: a process holding the lock on a connection
        // that is half-open would otherwise stall every writer.
        sqlx::query(&format!("SET LOCAL lock_timeout = '{}s'", LOCK_WAIT.as_secs()))
            .execute(&mut *tx)
            .await
            .map_err(append_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await.map_err(
            |e| match &e {
                sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03") => AppendError::Unavailable(format!(
                    "another shiplog process has held the ledger's append lock for {} s; try again",
                    LOCK_WAIT.as_secs()
                )),
                _ => append_error(e),
            },
        )?;
        Ok(tx)
    }

    /// Write the events and their tree hashes, announce the new tip `last`,
    /// commit (which releases the lock), and move this process's head on.
    async fn commit_writing(
        &self,
        mut tx: Transaction<'static, Postgres>,
        cols: &EventColumns,
        tree: &TreeWriter,
        last: u64,
    ) -> Result<(), AppendError> {
        cols.insert(&mut tx).await?;
        tree.save(&mut tx).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(last.to_string())
            .execute(&mut *tx)
            .await
            .map_err(append_error)?;
        tx.commit().await.map_err(append_error)?;
        if let Ok(mut h) = self.commit_sizes.lock() {
            h.observe(cols.seq.len() as f64);
        }
        advance(&self.head_tx, last);
        // Under the lock, this commit was the tip.
        if let Ok(mut at) = self.synced.lock() {
            *at = std::time::Instant::now();
        }
        Ok(())
    }

    /// Check every request of a group against the ledger and write the
    /// new events of those that stand, in one locked transaction: each
    /// request's outcome, in order. An error here fails the whole group.
    async fn write_group(&self, group: &[Request]) -> Result<Vec<Result<Vec<Receipt>, AppendError>>, AppendError> {
        let mut tx = self.begin_writing().await?;

        // The tip, and what the ledger knows of the group's ids and streams.
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, recorded_at FROM events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(append_error)?;
        let next_seq = match &last {
            Some((seq, _)) => u64::try_from(*seq).map_err(|_| AppendError::Storage(format!("negative seq {seq}")))? + 1,
            None => 0,
        };
        let last_recorded_at = match &last {
            Some((seq, at)) => Some(parse_time(at).map_err(|e| {
                AppendError::Storage(format!("the stored event at seq {seq} has an unreadable recordedAt: {e}"))
            })?),
            None => None,
        };
        let events = || group.iter().flat_map(|r| r.events.iter());
        let ids: Vec<String> = events().map(|e| e.id.hyphenated().to_string()).collect();
        let known: HashMap<Uuid, (Receipt, Vec<u8>)> = sqlx::query(
            "SELECT id::text, seq, stream, stream_version, recorded_at, digest, leaf_hash FROM events WHERE id = ANY($1::uuid[])",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(append_error)?
        .iter()
        .map(known_receipt)
        .collect::<Result<_, _>>()?;
        let names: Vec<String> =
            events().map(|e| e.stream.as_str().to_owned()).collect::<HashSet<_>>().into_iter().collect();
        let mut tips: HashMap<String, u64> = HashMap::new();
        // One backward index probe per stream: `MAX … GROUP BY` would read
        // every row of each stream (measured: most of an append's time).
        for row in sqlx::query(
            "SELECT s.stream, t.stream_version FROM UNNEST($1::text[]) AS s(stream)
             CROSS JOIN LATERAL (SELECT stream_version FROM events e WHERE e.stream = s.stream
                                 ORDER BY stream_version DESC LIMIT 1) t",
        )
        .bind(&names)
        .fetch_all(&mut *tx)
        .await
        .map_err(append_error)?
        {
            let (name, version): (String, i64) =
                (row.try_get(0).map_err(append_error)?, row.try_get(1).map_err(append_error)?);
            tips.insert(name, u64::try_from(version).unwrap_or(0));
        }
        let ledger = Ledger { known, tips };

        // recordedAt never goes backwards along seq, even if the clock (or
        // another process's clock) does.
        let now = Utc::now();
        let mut planner = Group::new(&ledger, next_seq, last_recorded_at.map_or(now, |last| now.max(last)));
        let mut outcomes = Vec::with_capacity(group.len());
        let mut rows: Vec<(&NewEvent, Receipt, &str)> = Vec::new();
        for request in group {
            match planner.plan(&request.events, &request.leaves) {
                Ok(planned) => {
                    for &i in &planned.new {
                        if let (Some(event), Some(receipt)) = (request.events.get(i), planned.receipts.get(i)) {
                            rows.push((event, receipt.clone(), &request.recorded_by));
                        }
                    }
                    outcomes.push(Ok(planned.receipts));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if rows.is_empty() {
            // Only duplicates and refusals: nothing to write.
            tx.rollback().await.map_err(append_error)?;
            return Ok(outcomes);
        }
        let mut tree = TreeWriter::default();
        tree.prefetch(&mut tx, next_seq, planner.next_seq()).await?;
        let mut cols = EventColumns::default();
        for (event, receipt, recorded_by) in &rows {
            tree.append(&mut tx, receipt.seq, receipt.leaf_hash).await?;
            cols.push(event, receipt, planner.recorded_at_text(), recorded_by)?;
        }
        self.commit_writing(tx, &cols, &tree, planner.next_seq() - 1).await?;
        Ok(outcomes)
    }
}

/// What the ledger holds of a group's ids and streams, read under the lock.
struct Ledger {
    known: HashMap<Uuid, (Receipt, Vec<u8>)>,
    tips: HashMap<String, u64>,
}

impl Recorded for Ledger {
    fn receipt(&self, id: &Uuid) -> Option<(Receipt, &[u8])> {
        self.known.get(id).map(|(r, d)| (r.clone(), d.as_slice()))
    }

    fn stream_tip(&self, stream: &str) -> Option<u64> {
        self.tips.get(stream).copied()
    }
}

/// This process's writer: takes the appends queued while it was writing and
/// commits them together (group commit), one locked transaction a group.
/// Ends when the queue closes and is empty.
async fn writer(inner: Arc<Inner>, mut queue: mpsc::Receiver<Request>) {
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
        // However a query stalls (a half-open connection), the group is
        // answered: dropping the future drops its transaction and connection.
        let written = match tokio::time::timeout(GROUP_WAIT, inner.write_group(&group)).await {
            Ok(written) => written,
            Err(_) => Err(AppendError::Unavailable(format!(
                "PostgreSQL did not finish an append within {} s; try again",
                GROUP_WAIT.as_secs()
            ))),
        };
        match written {
            Ok(outcomes) => {
                for (r, outcome) in group.into_iter().zip(outcomes) {
                    let _ = r.reply.send(outcome);
                }
            }
            Err(e) => {
                for r in group {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

struct Binds<'a>(Vec<Bind<'a>>);

/// The columns of the new events, for one `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct EventColumns {
    seq: Vec<i64>,
    id: Vec<String>,
    kind: Vec<String>,
    stream: Vec<String>,
    version: Vec<i64>,
    occurred_at: Vec<String>,
    recorded_at: Vec<String>,
    recorded_by: Vec<String>,
    actor: Vec<String>,
    source: Vec<Option<String>>,
    data: Vec<String>,
    links: Vec<Option<String>>,
    digest: Vec<Vec<u8>>,
    leaf: Vec<Vec<u8>>,
}

impl EventColumns {
    fn push(&mut self, e: &NewEvent, r: &Receipt, recorded_at: &str, recorded_by: &str) -> Result<(), AppendError> {
        let json = |e: serde_json::Error| AppendError::Storage(e.to_string());
        self.seq.push(int(r.seq)?);
        self.id.push(e.id.hyphenated().to_string());
        self.kind.push(e.event_type.as_str().to_owned());
        self.stream.push(r.stream.clone());
        self.version.push(int(r.stream_version)?);
        self.occurred_at.push(format_time(&e.occurred_at));
        self.recorded_at.push(recorded_at.to_owned());
        self.recorded_by.push(recorded_by.to_owned());
        self.actor.push(e.actor.as_str().to_owned());
        self.source.push(e.source.clone());
        self.data.push(serde_json::to_string(&e.data).map_err(json)?);
        self.links.push(if e.links.is_empty() { None } else { Some(serde_json::to_string(&e.links).map_err(json)?) });
        self.digest.push(e.digest.to_vec());
        self.leaf.push(r.leaf_hash.0.to_vec());
        Ok(())
    }

    /// Write the rows: one statement, whatever their number.
    async fn insert(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), AppendError> {
        sqlx::query(
            "INSERT INTO events (seq, id, type, stream, stream_version, occurred_at, recorded_at, recorded_by, actor, source, data, links, digest, leaf_hash)
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                                  $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[])",
        )
        .bind(&self.seq)
        .bind(&self.id)
        .bind(&self.kind)
        .bind(&self.stream)
        .bind(&self.version)
        .bind(&self.occurred_at)
        .bind(&self.recorded_at)
        .bind(&self.recorded_by)
        .bind(&self.actor)
        .bind(&self.source)
        .bind(&self.data)
        .bind(&self.links)
        .bind(&self.digest)
        .bind(&self.leaf)
        .execute(&mut **tx)
        .await
        .map_err(append_error)?;
        Ok(())
    }

    fn push_record(&mut self, r: &crate::StoredRecord) -> Result<(), StoreError> {
        let e = &r.raw.event;
        let leaf = e.leaf_hash.ok_or_else(|| StoreError::Corrupt { seq: e.seq, problem: "no leaf hash".into() })?;
        let int = |v: u64| i64::try_from(v).map_err(|_| StoreError::Storage(format!("{v} does not fit a bigint")));
        let json = |err: serde_json::Error| StoreError::Storage(err.to_string());
        self.seq.push(int(e.seq)?);
        self.id.push(e.id.hyphenated().to_string());
        self.kind.push(e.event_type.as_str().to_owned());
        self.stream.push(e.stream.clone());
        self.version.push(int(e.stream_version)?);
        self.occurred_at.push(format_time(&e.occurred_at));
        self.recorded_at.push(format_time(&e.recorded_at));
        self.recorded_by.push(e.recorded_by.clone());
        self.actor.push(e.actor.clone());
        self.source.push(e.source.clone());
        self.data.push(r.raw.data.clone());
        self.links.push(if e.links.is_empty() { None } else { Some(serde_json::to_string(&e.links).map_err(json)?) });
        self.digest.push(r.digest.clone());
        self.leaf.push(leaf.0.to_vec());
        Ok(())
    }
}

fn int(v: u64) -> Result<i64, AppendError> {
    i64::try_from(v).map_err(|_| AppendError::Storage(format!("{v} does not fit PostgreSQL's bigint")))
}

/// The tree hashes an append makes, and those it read, kept until they are
/// saved with the rest of its transaction.
#[derive(Default)]
struct TreeWriter {
    known: HashMap<u64, Hash>,
    made: Vec<(u64, Hash)>,
}

struct Known<'a>(&'a HashMap<u64, Hash>);

impl HashReader for Known<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or(TreeError::IndexesNotInTree)).collect()
    }
}

impl TreeWriter {
    /// Read, in one query, the stored hashes that leaves `from..to` will
    /// need from before `from` (which hashes a leaf needs depends only on
    /// its seq), so that appending them reads nothing more.
    async fn prefetch(&mut self, tx: &mut Transaction<'_, Postgres>, from: u64, to: u64) -> Result<(), AppendError> {
        let first_new = stored_hash_index(0, from);
        let mut wanted: Vec<i64> = (from..to)
            .flat_map(|seq| indexes_read_by(|r| stored_hashes_for_record_hash(seq, Hash([0; 32]), r)))
            .filter(|i| *i < first_new && !self.known.contains_key(i))
            .filter_map(|i| i64::try_from(i).ok())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            for (idx, hash) in read_hashes(&mut **tx, &wanted).await.map_err(|e| AppendError::Storage(e.to_string()))? {
                self.known.insert(idx, hash);
            }
        }
        Ok(())
    }

    async fn append(&mut self, tx: &mut Transaction<'_, Postgres>, seq: u64, leaf: Hash) -> Result<(), AppendError> {
        let needed = indexes_read_by(|r| stored_hashes_for_record_hash(seq, leaf, r));
        let missing: Vec<i64> =
            needed.iter().filter(|i| !self.known.contains_key(i)).filter_map(|i| i64::try_from(*i).ok()).collect();
        if !missing.is_empty() {
            for (idx, hash) in
                read_hashes(&mut **tx, &missing).await.map_err(|e| AppendError::Storage(e.to_string()))?
            {
                self.known.insert(idx, hash);
            }
        }
        let hashes = stored_hashes_for_record_hash(seq, leaf, &Known(&self.known))
            .map_err(|e| AppendError::Storage(format!("the stored Merkle tree is incomplete at seq {seq}: {e}")))?;
        let first = stored_hash_index(0, seq);
        for (k, h) in hashes.into_iter().enumerate() {
            self.known.insert(first + k as u64, h);
            self.made.push((first + k as u64, h));
        }
        Ok(())
    }

    async fn save(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), AppendError> {
        let idx: Vec<i64> = self.made.iter().map(|(i, _)| int(*i)).collect::<Result<_, _>>()?;
        let hashes: Vec<Vec<u8>> = self.made.iter().map(|(_, h)| h.0.to_vec()).collect();
        sqlx::query("INSERT INTO tree_hashes (idx, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])")
            .bind(&idx)
            .bind(&hashes)
            .execute(&mut **tx)
            .await
            .map_err(append_error)?;
        Ok(())
    }
}

/// Stored hashes by index; those not stored are left out.
async fn read_hashes<'e, E>(executor: E, indexes: &[i64]) -> Result<Vec<(u64, Hash)>, StoreError>
where
    E: Executor<'e, Database = Postgres>,
{
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT idx, hash FROM tree_hashes WHERE idx = ANY($1)")
        .bind(indexes)
        .fetch_all(executor)
        .await
        .map_err(store_error)?;
    rows.into_iter()
        .map(|(idx, hash)| {
            let hash = <[u8; 32]>::try_from(hash)
                .map(Hash)
                .map_err(|_| StoreError::Storage(format!("the stored tree hash {idx} is not 32 bytes")))?;
            Ok((u64::try_from(idx).unwrap_or(0), hash))
        })
        .collect()
}

fn known_receipt(row: &PgRow) -> Result<(Uuid, (Receipt, Vec<u8>)), AppendError> {
    let get = |e: sqlx::Error| AppendError::Storage(e.to_string());
    let id: String = row.try_get(0).map_err(get)?;
    let seq: i64 = row.try_get(1).map_err(get)?;
    let unreadable =
        |what: String| AppendError::Storage(format!("the stored event at seq {seq} is unreadable: {what}"));
    let id = Uuid::parse_str(&id).map_err(|e| unreadable(format!("id: {e}")))?;
    let at: String = row.try_get(4).map_err(get)?;
    let leaf: Vec<u8> = row.try_get(6).map_err(get)?;
    let receipt = Receipt {
        id,
        seq: u64::try_from(seq).map_err(|_| unreadable("negative seq".into()))?,
        stream: row.try_get(2).map_err(get)?,
        stream_version: u64::try_from(row.try_get::<i64, _>(3).map_err(get)?).unwrap_or(0),
        recorded_at: parse_time(&at).map_err(|e| unreadable(format!("recordedAt: {e}")))?,
        leaf_hash: <[u8; 32]>::try_from(leaf).map(Hash).map_err(|_| unreadable("leaf hash is not 32 bytes".into()))?,
        duplicate: true,
    };
    Ok((id, (receipt, row.try_get(5).map_err(get)?)))
}

fn raw_row(row: &PgRow) -> Result<RawRow, StoreError> {
    let seq: i64 = row.try_get(0).map_err(store_error)?;
    let seq = u64::try_from(seq).map_err(|_| StoreError::Storage(format!("negative seq {seq}")))?;
    let corrupt = |e: sqlx::Error| StoreError::Corrupt { seq, problem: e.to_string() };
    let stream_version: i64 = row.try_get(4).map_err(corrupt)?;
    Ok(RawRow {
        seq,
        id: row.try_get(1).map_err(corrupt)?,
        event_type: row.try_get(2).map_err(corrupt)?,
        stream: row.try_get(3).map_err(corrupt)?,
        stream_version: u64::try_from(stream_version)
            .map_err(|_| StoreError::Corrupt { seq, problem: "negative stream version".into() })?,
        occurred_at: row.try_get(5).map_err(corrupt)?,
        recorded_at: row.try_get(6).map_err(corrupt)?,
        recorded_by: row.try_get(7).map_err(corrupt)?,
        actor: row.try_get(8).map_err(corrupt)?,
        source: row.try_get(9).map_err(corrupt)?,
        data: row.try_get(10).map_err(corrupt)?,
        links: row.try_get(11).map_err(corrupt)?,
        leaf_hash: row.try_get(12).map_err(corrupt)?,
    })
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc))
}

/// Connection trouble is the database being away (503, retry); anything
/// else is a failure.
fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed)
        || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")))
}

fn store_error(e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("PostgreSQL cannot be reached: {e}"))
    } else {
        StoreError::Storage(e.to_string())
    }
}

fn append_error(e: sqlx::Error) -> AppendError {
    if is_unavailable(&e) {
        AppendError::Unavailable(format!("PostgreSQL cannot be reached: {e}"))
    } else {
        AppendError::Storage(e.to_string())
    }
}

fn from_append(e: AppendError) -> StoreError {
    match e {
        AppendError::Unavailable(m) => StoreError::Unavailable(m),
        other => StoreError::Storage(other.to_string()),
    }
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => AppendError::Unavailable(m),
            other => AppendError::Storage(other.to_string()),
        }
    }
}

async fn migrate(pool: &PgPool, location: &str) -> Result<(), StoreError> {
    let failed = |e: sqlx::Error| StoreError::Storage(format!("cannot migrate the schema in {location}: {e}"));
    let mut tx = pool.begin().await.map_err(store_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATE_LOCK).execute(&mut *tx).await.map_err(failed)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS shiplog_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let done: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM shiplog_migrations").fetch_one(&mut *tx).await.map_err(failed)?;
    let done = usize::try_from(done).unwrap_or(0);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Storage(format!(
            "{location} holds a ledger of a newer shiplog (schema version {done}, this one knows {}); upgrade shiplog",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(failed)?;
        sqlx::query("INSERT INTO shiplog_migrations (version) VALUES ($1)")
            .bind(i32::try_from(version + 1).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

async fn tip<'e, E>(executor: E) -> Result<Option<u64>, StoreError>
where
    E: Executor<'e, Database = Postgres>,
{
    let max: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM events").fetch_one(executor).await.map_err(store_error)?;
    Ok(max.and_then(|m| u64::try_from(m).ok()))
}

fn advance(head: &watch::Sender<Option<u64>>, seq: u64) {
    head.send_if_modified(|h| {
        if *h < Some(seq) {
            *h = Some(seq);
            true
        } else {
            false
        }
    });
}

/// Keep `head` at the database's tip: on every notification, and every
/// [`POLL`] in case one was missed.
async fn follow_head(pool: PgPool, head: Arc<watch::Sender<Option<u64>>>, synced: Arc<Mutex<std::time::Instant>>) {
    let confirm = || {
        if let Ok(mut at) = synced.lock() {
            *at = std::time::Instant::now();
        }
    };
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            if let Ok(mut l) = PgListener::connect_with(&pool).await {
                if l.listen(CHANNEL).await.is_ok() {
                    listener = Some(l);
                }
            }
        }
        let notified = match listener.as_mut() {
            Some(l) => match tokio::time::timeout(POLL, l.try_recv()).await {
                Ok(Ok(Some(n))) => n.payload().parse::<u64>().ok(),
                Ok(Ok(None)) => None, // reconnected: notifications may have been missed
                Ok(Err(_)) => {
                    listener = None;
                    None
                }
                Err(_) => None, // no news within POLL
            },
            None => {
                tokio::time::sleep(POLL).await;
                None
            }
        };
        match notified {
            Some(seq) => {
                advance(&head, seq);
                confirm();
            }
            None => match tip(&pool).await {
                Ok(Some(seq)) => {
                    advance(&head, seq);
                    confirm();
                }
                Ok(None) => confirm(),
                Err(_) => {}
            },
        }
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, events: Vec<NewEvent>, recorded_by: &str) -> Result<Vec<Receipt>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.open_for_appends()?;
        let leaves = crate::plan::templates(&events, recorded_by)?;
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        let queue = queue.ok_or_else(|| AppendError::Unavailable("the store is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { events, leaves, recorded_by: recorded_by.to_owned(), reply })
            .await
            .map_err(|_| AppendError::Unavailable("the store is shutting down".into()))?;
        answer.await.map_err(|_| AppendError::Unavailable("the store stopped before answering".into()))?
    }

    async fn read(&self, query: ReadQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(query.limit.clamp(1, MAX_READ_LIMIT)).unwrap_or(1);
        let after = query.after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let type_name = query.event_type.map(EventType::as_str);
        let mut binds = vec![Bind::Int(after), Bind::Int(limit)];
        let sql = match (&query.stream, type_name) {
            (None, None) => format!("SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"),
            (Some(stream), None) => {
                binds.push(Bind::Text(stream));
                format!("SELECT {COLUMNS} FROM events WHERE stream = $3 AND seq > $1 ORDER BY stream_version LIMIT $2")
            }
            (None, Some(t)) => {
                binds.push(Bind::Text(t));
                format!("SELECT {COLUMNS} FROM events WHERE type = $3 AND seq > $1 ORDER BY seq LIMIT $2")
            }
            (Some(stream), Some(t)) => {
                binds.push(Bind::Text(stream));
                binds.push(Bind::Text(t));
                format!(
                    "SELECT {COLUMNS} FROM events WHERE stream = $3 AND type = $4 AND seq > $1 ORDER BY stream_version LIMIT $2"
                )
            }
        };
        self.fetch(&sql, Binds(binds)).await?.into_iter().map(RawRow::into_event).collect()
    }

    async fn read_raw(&self, after: Option<u64>, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, MAX_READ_LIMIT)).unwrap_or(1);
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let sql = format!("SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.fetch(&sql, Binds(vec![Bind::Int(after), Bind::Int(limit)]))
            .await?
            .into_iter()
            .map(|r| r.into_raw().map(|(event, data)| RawEvent { event, data }))
            .collect()
    }

    async fn read_records(&self, after: Option<u64>, limit: usize) -> Result<Vec<crate::StoredRecord>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, MAX_READ_LIMIT)).unwrap_or(1);
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let rows = sqlx::query(&format!("SELECT {COLUMNS}, digest FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let digest: Vec<u8> = row.try_get(13).map_err(store_error)?;
                let (event, data) = raw_row(row)?.into_raw()?;
                Ok(crate::StoredRecord { raw: RawEvent { event, data }, digest })
            })
            .collect()
    }

    async fn import(&self, records: Vec<crate::StoredRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shutting down".into()));
        }
        let mut tx = self.inner.begin_writing().await.map_err(from_append)?;
        let mut next = tip(&mut *tx).await?.map_or(0, |t| t + 1);
        let mut tree = TreeWriter::default();
        tree.prefetch(&mut tx, next, next + records.len() as u64).await.map_err(from_append)?;
        let mut cols = EventColumns::default();
        for record in &records {
            let event = &record.raw.event;
            let seq = event.seq;
            if seq != next {
                return Err(StoreError::Storage(format!(
                    "the copied records must continue this ledger: its next seq is {next}, the record's {seq}"
                )));
            }
            let (_, leaf) = record.checked()?;
            tree.append(&mut tx, seq, leaf).await.map_err(from_append)?;
            cols.push_record(record)?;
            next += 1;
        }
        self.inner.commit_writing(tx, &cols, &tree, next - 1).await.map_err(from_append)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, MAX_READ_LIMIT)).unwrap_or(1);
        let from = i64::try_from(from_version).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE stream = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
        );
        self.fetch(&sql, Binds(vec![Bind::Text(stream), Bind::Int(from), Bind::Int(limit)]))
            .await?
            .into_iter()
            .map(RawRow::into_event)
            .collect()
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream = $1")
            .bind(stream)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    }

    fn head(&self) -> watch::Receiver<Option<u64>> {
        self.inner.head.clone()
    }

    async fn tree_hashes(&self, indexes: Vec<u64>) -> Result<Vec<Hash>, StoreError> {
        let wanted: Vec<i64> = indexes.iter().filter_map(|i| i64::try_from(*i).ok()).collect();
        let found: HashMap<u64, Hash> = read_hashes(&self.inner.pool, &wanted).await?.into_iter().collect();
        indexes
            .iter()
            .map(|i| {
                found.get(i).copied().ok_or_else(|| {
                    StoreError::Storage(format!("the stored Merkle tree cannot be read: hash {i} is not stored"))
                })
            })
            .collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row: Option<(i64, Vec<u8>, String)> =
            sqlx::query_as("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(store_error)?;
        row.map(|(size, root, note)| {
            let size = u64::try_from(size).map_err(|_| StoreError::Storage(format!("a checkpoint of size {size}")))?;
            let root = <[u8; 32]>::try_from(root)
                .map(Hash)
                .map_err(|_| StoreError::Storage(format!("the checkpoint at size {size} has a malformed root")))?;
            Ok(StoredCheckpoint { size, root, note })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shutting down".into()));
        }
        let size = i64::try_from(checkpoint.size).map_err(|_| StoreError::Storage("checkpoint too large".into()))?;
        sqlx::query(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
        )
        .bind(size)
        .bind(checkpoint.root.0.to_vec())
        .bind(&checkpoint.note)
        .bind(format_time(&Utc::now()))
        .execute(&self.inner.pool)
        .await
        .map_err(store_error)?;
        Ok(())
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
        sqlx::query("SELECT 1").execute(&self.inner.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        // Closing the queue lets the writer finish the appends accepted.
        drop(self.queue.lock().ok().and_then(|mut q| q.take()));
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = writer {
            let _ = w.await;
        }
        let follower = self.inner.follower.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = follower {
            f.abort();
            let _ = f.await;
        }
        // Waits for the connections in use, so appends already under way
        // finish (commit or roll back) first.
        self.inner.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL server the tests use: `SHIPLOG_TEST_PG_URL`, or the
    /// local one CI starts. `None` (and a note) when none answers, unless
    /// `CI=true`, where that fails.
    pub(crate) async fn server() -> Option<String> {
        let url = std::env::var("SHIPLOG_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        match sqlx::PgPool::connect(&url).await {
            Ok(pool) => {
                pool.close().await;
                Some(url)
            }
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true and no PostgreSQL at {}: {e}",
                    redact(&url)
                );
                eprintln!(
                    "SKIPPED: PostgreSQL store tests: nothing answers at {} ({e}); start PostgreSQL or set SHIPLOG_TEST_PG_URL",
                    redact(&url)
                );
                None
            }
        }
    }

    /// A fresh, empty database on that server, dropped afterwards.
    pub(crate) struct Scratch {
        admin: String,
        pub(crate) name: String,
        pub(crate) url: String,
    }

    impl Scratch {
        pub(crate) async fn new(server: &str) -> Scratch {
            let name = format!("shiplog_test_{}", Uuid::new_v4().simple());
            let url = create_database(server, &name).await.unwrap();
            Scratch { admin: server.to_owned(), url, name }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // A runtime of its own: drop may run outside of one, or on it.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = rt.block_on(drop_database(&admin, &name));
                }
            })
            .join();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_passes_the_store_contract() {
        let Some(server) = server().await else { return };
        crate::contract::run(|| {
            let server = server.clone();
            async move {
                let scratch = Scratch::new(&server).await;
                let store = PostgresStore::open(&scratch.url).await.unwrap();
                (store, scratch)
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_database_share_one_gap_free_order() {
        let Some(server) = server().await else { return };
        let scratch = Scratch::new(&server).await;
        let a = Arc::new(PostgresStore::open(&scratch.url).await.unwrap());
        let b = Arc::new(PostgresStore::open(&scratch.url).await.unwrap());
        crate::contract::two_writers_share_one_order(&a, &b).await;
        // Each follows the other's appends, and says how fresh its view is.
        for store in [&a, &b] {
            let age = store.metrics().follow_age_seconds.unwrap();
            assert!(age < 2.5, "the tip was last confirmed {age} s ago");
        }
        // The tree both wrote is one tree: every leaf audits.
        let report = crate::tree::audit(a.as_ref(), |_| {}).await.unwrap();
        assert!(report.verdict.is_ok(), "{:?}", report.verdict);
        assert_eq!(report.events, 480);
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_keeps_events_and_duplicates() {
        let Some(server) = server().await else { return };
        let scratch = Scratch::new(&server).await;
        let store = PostgresStore::open(&scratch.url).await.unwrap();
        let first = crate::contract::deployments(3, "checkout");
        let receipts = store.append(first.clone(), "test").await.unwrap();
        store.close().await;
        let err = store.append(crate::contract::deployments(1, "x"), "test").await.unwrap_err();
        assert!(matches!(err, AppendError::Unavailable(_)), "{err:?}");

        let store = PostgresStore::open(&scratch.url).await.unwrap();
        assert_eq!(*store.head().borrow(), Some(2));
        let retry = store.append(vec![first[1].clone()], "test").await.unwrap();
        assert_eq!(retry[0], Receipt { duplicate: true, ..receipts[1].clone() });
        let more = store.append(crate::contract::deployments(1, "checkout"), "test").await.unwrap();
        assert_eq!((more[0].seq, more[0].stream_version), (3, 3));
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copied_ledger_keeps_every_record_and_root() {
        let Some(server) = server().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = crate::SqliteStore::open(&dir.path().join("ledger.db")).unwrap();
        for n in 0..7 {
            sqlite.append(crate::contract::deployments(n + 1, &format!("svc-{}", n % 3)), "ci-main").await.unwrap();
        }
        let records = sqlite.read_records(None, 1_000).await.unwrap();
        assert_eq!(records.len(), 28);
        let scratch = Scratch::new(&server).await;
        let pg = PostgresStore::open(&scratch.url).await.unwrap();
        pg.import(records[..10].to_vec()).await.unwrap();
        // Out of order, or altered: refused, nothing written.
        let err = pg.import(records[11..].to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("next seq is 10"), "{err}");
        let mut forged = records[10].clone();
        forged.raw.event.recorded_by = "someone-else".into();
        let err = pg.import(vec![forged]).await.unwrap_err();
        assert!(err.to_string().contains("does not hash to its stored leaf"), "{err}");
        pg.import(records[10..].to_vec()).await.unwrap();

        assert_eq!(pg.read_records(None, 1_000).await.unwrap(), records);
        for size in [1, 10, 28] {
            assert_eq!(crate::tree::root(&pg, size).await.unwrap(), crate::tree::root(&sqlite, size).await.unwrap());
        }
        assert!(crate::tree::audit(&pg, |_| {}).await.unwrap().verdict.is_ok());
        // A retry of a copied event is still a duplicate, with its original receipt.
        let again = pg
            .append(
                vec![crate::contract::parse(serde_json::json!({
            "id": records[3].raw.event.id, "type": "deployment.succeeded", "occurredAt": "2026-11-20T10:00:00Z",
            "actor": "u-1042", "source": "https://ci.example.com/runs/42",
            "data": serde_json::from_str::<serde_json::Value>(&records[3].raw.data).unwrap()}))],
                "x",
            )
            .await;
        let again = again.unwrap();
        assert_eq!((again[0].seq, again[0].duplicate), (3, true));
        assert_eq!(Some(again[0].leaf_hash), records[3].raw.event.leaf_hash);
        let more = pg.append(crate::contract::deployments(1, "svc-0"), "ci-main").await.unwrap();
        assert_eq!(more[0].seq, 28);
        sqlite.close().await;
        pg.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_lock_held_too_long_is_unavailable_not_a_hang() {
        let Some(server) = server().await else { return };
        let scratch = Scratch::new(&server).await;
        let store = PostgresStore::open(&scratch.url).await.unwrap();
        store.append(crate::contract::deployments(1, "checkout"), "t").await.unwrap();
        // Another "process" takes the lock and sits on it.
        let holder = PgPool::connect(&scratch.url).await.unwrap();
        let mut tx = holder.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await.unwrap();
        let started = std::time::Instant::now();
        let err = store.append(crate::contract::deployments(1, "checkout"), "t").await.unwrap_err();
        assert!(matches!(err, AppendError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("append lock"), "{err}");
        assert!(started.elapsed() < LOCK_WAIT + Duration::from_secs(5), "{:?}", started.elapsed());
        tx.rollback().await.unwrap();
        let next = store.append(crate::contract::deployments(1, "checkout"), "t").await.unwrap();
        assert_eq!(next[0].seq, 1, "the refused append left no trace");
        holder.close().await;
        store.close().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_with_the_cause() {
        // Port 1 on loopback: nothing listens there.
        let err = PostgresStore::open("postgres://shiplog:s3cret@127.0.0.1:1/ledger").await.err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(text.contains("refused"), "{text}");
        assert!(text.contains("postgres://shiplog:****@127.0.0.1:1/ledger") && !text.contains("s3cret"), "{text}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/ledger"), "postgres://app:****@db:5432/ledger");
        assert_eq!(redact("postgres://app@db/ledger"), "postgres://app@db/ledger");
        assert_eq!(redact("postgres:///ledger"), "postgres:///ledger");
    }
}
