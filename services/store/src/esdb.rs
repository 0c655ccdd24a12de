//! EventStoreDB / KurrentDB as the engine under a [`LogStore`] (cargo
//! feature `eventstore`), through the official gRPC client, the
//! `eventstore` crate.
//!
//! The ledger is the stream `shiplog-ledger`: record `seq` is the event at
//! revision `seq`, its event id the shiplog event id, its type the shiplog
//! type, its data the record as JSON. A batch is one `AppendToStream` with
//! the expected revision of the last indexed record (`NoStream` for the
//! first), so the server refuses a writer whose view is stale and the
//! revisions, hence the seqs, stay gap-free whichever process writes.
//! New events are followed with a catch-up subscription to the stream, and
//! a look every second besides.
//!
//! The server refuses an append larger than its `MaxAppendSize` (1 MiB by
//! default). Groups larger than that are split; a single batch larger than
//! that is refused before it is sent. A server with a larger limit is named
//! with `maxAppendSize=BYTES` in the URL (shiplog's own parameter, taken
//! out before the client sees the URL).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, ExpectedRevision, ReadStreamOptions,
    StreamPosition,
};

use crate::logstore::{AppendLog, Entry, LogError, LogStore};

/// The ledger on EventStoreDB / KurrentDB.
pub type EventStoreDbStore = LogStore<EsdbLog>;

/// How long an append may take.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a read may take: a catch-up page is up to 1,000 records, and
/// records may be large.
const READ_DEADLINE: Duration = Duration::from_secs(60);
/// How often a follower asks for the ledger's last event.
const POLL: Duration = Duration::from_millis(200);
/// The server's `MaxAppendSize` unless the URL says otherwise.
const DEFAULT_MAX_APPEND: usize = 1_048_576;

/// Connect to the server `url` names and open the ledger there.
/// `esdb://host:2113?tls=false`, `esdb+discover://…` for a cluster; the
/// `kurrentdb://` spellings are taken as the same.
pub async fn open(url: &str) -> Result<EventStoreDbStore, crate::StoreError> {
    let log = EsdbLog::connect(url)?;
    LogStore::open(log).await
}

/// An [`AppendLog`] on an EventStoreDB / KurrentDB server.
pub struct EsdbLog {
    client: Client,
    location: String,
    /// What an append's entries may hold, with room for the per-event
    /// overhead the server counts too.
    max_append_bytes: usize,
}

impl EsdbLog {
    /// A client for `url`; it connects on first use.
    pub fn connect(url: &str) -> Result<EsdbLog, crate::StoreError> {
        // The client installs rustls's aws-lc-rs provider as the process
        // default on first use, and panics if another is installed first:
        // so shiplog never installs one (its own TLS names ring explicitly).
        let location = crate::postgres::redact(url);
        let (esdb, max_append) =
            shiplog_parameters(&normalise(url)).map_err(|e| crate::StoreError::Storage(format!("{location}: {e}")))?;
        let settings: ClientSettings = esdb.parse().map_err(|e| {
            crate::StoreError::Storage(format!(
                "{location} is not an EventStoreDB URL ({e}); give esdb://HOST:2113?tls=false, or esdb+discover://… for a cluster"
            ))
        })?;
        let client = Client::new(settings)
            .map_err(|e| crate::StoreError::Unavailable(format!("cannot reach {location}: {e}")))?;
        Ok(EsdbLog { client, location, max_append_bytes: max_append / 100 * 95 })
    }
}

/// The client takes `esdb://` and `esdb+discover://`; KurrentDB's own
/// spellings name the same protocol.
fn normalise(url: &str) -> String {
    for (from, to) in
        [("kurrentdb+discover://", "esdb+discover://"), ("kurrentdb://", "esdb://"), ("kurrent://", "esdb://")]
    {
        if let Some(rest) = url.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    url.to_owned()
}

/// The URL without shiplog's `maxAppendSize` parameter, and its value;
/// refused when it asks for reads from followers.
fn shiplog_parameters(url: &str) -> Result<(String, usize), String> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), DEFAULT_MAX_APPEND)) };
    let mut most = DEFAULT_MAX_APPEND;
    let mut kept = Vec::new();
    for param in query.split('&') {
        match param.split_once('=') {
            Some((key, value))
                if key.eq_ignore_ascii_case("nodePreference") && !value.eq_ignore_ascii_case("leader") =>
            {
                return Err(format!(
                    "nodePreference={value}: shiplog reads its own writes, so it reads from the leader; \
                     leave nodePreference out (or set it to leader)"
                ));
            }
            Some((key, value)) if key.eq_ignore_ascii_case("maxAppendSize") => {
                most = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1_024)
                    .ok_or_else(|| format!("maxAppendSize={value} is not a size in bytes (1024 or more)"))?;
            }
            _ => kept.push(param),
        }
    }
    Ok((if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }, most))
}

fn log_error(location: &str, e: eventstore::Error) -> LogError {
    use eventstore::Error as E;
    match e {
        E::ConnectionClosed
        | E::GrpcConnectionError(_)
        | E::DeadlineExceeded
        | E::NotLeaderException(_)
        | E::ServerError(_) => LogError::Unavailable(format!("{location}: {e}")),
        // gRPC codes worth trying again (the code's type is tonic's, the
        // client's own dependency; the client maps UNAVAILABLE itself).
        E::Grpc { ref code, .. }
            if matches!(
                format!("{code:?}").as_str(),
                "Unavailable" | "Cancelled" | "Aborted" | "ResourceExhausted"
            ) =>
        {
            LogError::Unavailable(format!("{location}: {e}"))
        }
        E::AccessDenied => LogError::Failed(format!(
            "{location} refused access: give credentials in the URL (esdb://USER:PASSWORD@HOST:2113) with rights to the shiplog streams"
        )),
        other => LogError::Failed(format!("{location}: {other}")),
    }
}

#[async_trait]
impl AppendLog for EsdbLog {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn read(&self, stream: &str, from: u64, count: usize) -> Result<Vec<Entry>, LogError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(count)
            .deadline(READ_DEADLINE);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(r) => r,
            Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(log_error(&self.location, e)),
        };
        let mut out = Vec::with_capacity(count.min(1_000));
        loop {
            match read.next().await {
                Ok(Some(event)) => {
                    let e = event.get_original_event();
                    let expected = from + out.len() as u64;
                    if e.revision != expected {
                        return Err(LogError::Failed(format!(
                            "{}: {stream} skips from revision {expected} to {}; events were deleted or scavenged",
                            self.location, e.revision
                        )));
                    }
                    out.push(Entry { id: e.id, kind: e.event_type.clone(), data: e.data.to_vec() });
                }
                Ok(None) => return Ok(out),
                Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(e) => return Err(log_error(&self.location, e)),
            }
        }
    }

    async fn last(&self, stream: &str) -> Result<Option<(u64, Entry)>, LogError> {
        let options =
            ReadStreamOptions::default().backwards().position(StreamPosition::End).max_count(1).deadline(DEADLINE);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(r) => r,
            Err(eventstore::Error::ResourceNotFound) => return Ok(None),
            Err(e) => return Err(log_error(&self.location, e)),
        };
        match read.next().await {
            Ok(Some(event)) => {
                let e = event.get_original_event();
                Ok(Some((e.revision, Entry { id: e.id, kind: e.event_type.clone(), data: e.data.to_vec() })))
            }
            Ok(None) | Err(eventstore::Error::ResourceNotFound) => Ok(None),
            Err(e) => Err(log_error(&self.location, e)),
        }
    }

    async fn append(&self, stream: &str, len: u64, entries: Vec<Entry>) -> Result<(), LogError> {
        let expected = match len.checked_sub(1) {
            None => ExpectedRevision::NoStream,
            Some(rev) => ExpectedRevision::Exact(rev),
        };
        let events = entries
            .iter()
            .map(|e| {
                // JSON, so the server (and its projections) can read it.
                let value: serde_json::Value = serde_json::from_slice(&e.data)
                    .map_err(|err| LogError::Failed(format!("an entry is not JSON: {err}")))?;
                EventData::json(&e.kind, &value)
                    .map(|d| d.id(e.id))
                    .map_err(|err| LogError::Failed(format!("cannot encode an entry: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = AppendToStreamOptions::default().expected_revision(expected).deadline(DEADLINE);
        match self.client.append_to_stream(stream, &options, events).await {
            Ok(_) => Ok(()),
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => Err(LogError::Moved {
                expected: len,
                actual: match current {
                    CurrentRevision::Current(rev) => rev + 1,
                    CurrentRevision::NoStream => 0,
                },
            }),
            Err(e) => Err(log_error(&self.location, e)),
        }
    }

    async fn grown(&self, stream: &str, len: u64) -> Result<(), LogError> {
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            if self.last(stream).await?.is_some_and(|(pos, _)| pos + 1 > len) || Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn check(&self) -> Result<(), LogError> {
        self.last(crate::logstore::CHECKPOINTS).await.map(|_| ())
    }

    fn max_append_bytes(&self) -> usize {
        self.max_append_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract suite against a real server, when `SHIPLOG_ESDB_URL`
    /// names one (e.g. `esdb://127.0.0.1:2113?tls=false`, a server started
    /// with `--insecure`). Each run uses streams of its own: the ledger
    /// streams are prefixed per store (see `Prefixed`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn esdb_passes_the_store_contract() {
        let Ok(url) = std::env::var("SHIPLOG_ESDB_URL") else {
            eprintln!(
                "SKIPPED: EventStoreDB store tests: SHIPLOG_ESDB_URL is not set (e.g. esdb://127.0.0.1:2113?tls=false)"
            );
            return;
        };
        crate::contract::run(|| {
            let url = url.clone();
            async move {
                let log = Prefixed {
                    inner: EsdbLog::connect(&url).unwrap(),
                    prefix: uuid::Uuid::new_v4().simple().to_string(),
                };
                (LogStore::open(log).await.unwrap(), ())
            }
        })
        .await;
    }

    /// The ledger's streams under a prefix of their own, so that test runs
    /// on one server never meet.
    struct Prefixed {
        inner: EsdbLog,
        prefix: String,
    }

    impl Prefixed {
        fn name(&self, stream: &str) -> String {
            format!("{}-{stream}", self.prefix)
        }
    }

    #[async_trait]
    impl AppendLog for Prefixed {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn read(&self, stream: &str, from: u64, count: usize) -> Result<Vec<Entry>, LogError> {
            self.inner.read(&self.name(stream), from, count).await
        }
        async fn last(&self, stream: &str) -> Result<Option<(u64, Entry)>, LogError> {
            self.inner.last(&self.name(stream)).await
        }
        async fn append(&self, stream: &str, len: u64, entries: Vec<Entry>) -> Result<(), LogError> {
            self.inner.append(&self.name(stream), len, entries).await
        }
        async fn grown(&self, stream: &str, len: u64) -> Result<(), LogError> {
            self.inner.grown(&self.name(stream), len).await
        }
        async fn check(&self) -> Result<(), LogError> {
            self.inner.check().await
        }
        fn max_append_bytes(&self) -> usize {
            self.inner.max_append_bytes()
        }
    }

    #[test]
    fn kurrentdb_urls_are_esdb_urls() {
        assert_eq!(normalise("kurrentdb://h:2113?tls=false"), "esdb://h:2113?tls=false");
        assert_eq!(normalise("kurrentdb+discover://h:2113"), "esdb+discover://h:2113");
        assert_eq!(normalise("esdb://h:2113"), "esdb://h:2113");
    }

    #[test]
    fn max_append_size_is_shiplogs_parameter() {
        assert_eq!(shiplog_parameters("esdb://h:2113"), Ok(("esdb://h:2113".into(), DEFAULT_MAX_APPEND)));
        assert_eq!(
            shiplog_parameters("esdb://h:2113?tls=false&maxAppendSize=4194304"),
            Ok(("esdb://h:2113?tls=false".into(), 4_194_304))
        );
        assert_eq!(shiplog_parameters("esdb://h?maxappendsize=2048"), Ok(("esdb://h".into(), 2048)));
        assert!(shiplog_parameters("esdb://h?maxAppendSize=big").unwrap_err().contains("maxAppendSize=big"));
        assert!(shiplog_parameters("esdb://h?nodePreference=follower").unwrap_err().contains("leader"));
        assert!(shiplog_parameters("esdb://h?nodePreference=leader").is_ok());
    }
}
