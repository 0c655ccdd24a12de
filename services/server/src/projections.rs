//! The projections the server answers from: gate facts, delivery figures
//! and the audit index, rebuilt by replaying the log at start and kept
//! current by tailing it. One follower feeds them all, parsing each event
//! once; queries read them and never scan the store.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use shiplog_core::delivery::Delivery;
use shiplog_core::facts::GateFacts;
use shiplog_core::index::LedgerIndex;
use shiplog_core::{EventData, RecordedEvent};
use shiplog_store::{EventStore, RawEvent};
use tokio::sync::{broadcast, watch};

/// Everything the follower maintains.
#[derive(Default)]
pub struct Views {
    pub facts: GateFacts,
    pub delivery: Delivery,
    pub index: LedgerIndex,
}

impl Views {
    /// Apply one event to every view.
    pub fn apply(&mut self, event: &RecordedEvent, data: Option<&EventData>) {
        self.index.apply(event, data);
        if let Some(d) = data {
            self.delivery.apply(event, d);
        }
        self.facts.apply_data(event.seq, data);
    }

    /// Apply a batch in `seq` order. A large batch (a replay) is applied
    /// on two threads: the audit index on one, the delivery figures and
    /// the gate facts on the other; they share nothing.
    pub fn apply_batch(&mut self, batch: &[(RecordedEvent, Option<EventData>)]) {
        if batch.len() < PARALLEL_BATCH {
            for (event, data) in batch {
                self.apply(event, data.as_ref());
            }
            return;
        }
        let Views { facts, delivery, index } = self;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for (event, data) in batch {
                    index.apply(event, data.as_ref());
                }
            });
            for (event, data) in batch {
                if let Some(d) = data {
                    delivery.apply(event, d);
                }
                facts.apply_data(event.seq, data.as_ref());
            }
        });
    }
}

/// Batches at least this large are applied on two threads.
const PARALLEL_BATCH: usize = 1_000;

/// Events read from the store at a time.
const BATCH: usize = 5_000;
const _: () = assert!(BATCH <= shiplog_store::MAX_READ_LIMIT, "a batch is one read");
/// Batches read and parsed at once while the log ahead is long (a replay).
const READ_AHEAD: usize = 2;

/// How many new events a subscriber may fall behind before it is told it
/// lagged: two whole batches, so that a full batch never makes a
/// subscriber that keeps up lag.
const FEED_CAPACITY: usize = 2 * BATCH;

/// Longest wait between retries of a failing read.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Projections {
    views: Arc<RwLock<Views>>,
    applied: watch::Receiver<Option<u64>>,
    feed: broadcast::Sender<Arc<RecordedEvent>>,
    /// Why the follower stopped, once it has.
    stopped: Arc<std::sync::Mutex<Option<String>>>,
}

impl Projections {
    /// Replay the log into fresh views, then keep following it. Returns once
    /// the replay has caught up with the head seen at start.
    pub async fn start(store: Arc<dyn EventStore>) -> Result<Arc<Projections>, String> {
        let target = *store.head().borrow();
        let mut fresh = Views::default();
        fresh.index.reserve(target.map_or(0, |t| usize::try_from(t + 1).unwrap_or(0)));
        let views = Arc::new(RwLock::new(fresh));
        let (applied_tx, applied) = watch::channel(None);
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let stopped = Arc::new(std::sync::Mutex::new(None));
        let projections = Arc::new(Projections {
            views: Arc::clone(&views),
            applied,
            feed: feed.clone(),
            stopped: Arc::clone(&stopped),
        });
        let started = Instant::now();
        tokio::spawn(async move {
            let reason = match follow(store, views, applied_tx, feed).await {
                Ok(()) => "the store was closed".to_owned(),
                Err(e) => {
                    tracing::error!(error = %e, "the projections stopped following the ledger; queries and gates are stale");
                    e
                }
            };
            if let Ok(mut s) = stopped.lock() {
                *s = Some(reason);
            }
        });
        projections.caught_up_to(target, Duration::from_secs(600)).await?;
        if let Some(t) = target {
            tracing::info!(
                events = t + 1,
                millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "projections rebuilt from the log"
            );
        }
        Ok(projections)
    }

    /// The views, for reading. Hold the guard briefly: the follower waits.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Views>, crate::ApiError> {
        self.views.read().map_err(|_| crate::ApiError::new(crate::Code::Internal, "the projections are unavailable"))
    }

    /// The seq of the last event applied.
    pub fn applied(&self) -> Option<u64> {
        *self.applied.borrow()
    }

    /// Wait until the views include the event at `target`.
    pub async fn caught_up_to(&self, target: Option<u64>, within: Duration) -> Result<(), String> {
        let Some(target) = target else { return Ok(()) };
        let mut applied = self.applied.clone();
        let wait = applied.wait_for(|a| a.is_some_and(|a| a >= target));
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(_)) => Ok(()),
            // The follower is gone: say why, rather than that time ran out.
            _ => match self.stopped.lock().ok().and_then(|s| s.clone()) {
                Some(reason) => Err(format!("the projections stopped following the ledger: {reason}")),
                None => Err(format!("the projections did not reach seq {target} within {} s", within.as_secs())),
            },
        }
    }

    /// New events as they are applied (after the replay at start).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.feed.subscribe()
    }
}

async fn follow(
    store: Arc<dyn EventStore>,
    views: Arc<RwLock<Views>>,
    applied: watch::Sender<Option<u64>>,
    feed: broadcast::Sender<Arc<RecordedEvent>>,
) -> Result<(), String> {
    let mut head = store.head();
    let mut after: Option<u64> = None;
    // Reading and parsing a batch is one task, run while the batch before
    // it is applied. The data's text is kept for subscribers, if any.
    let read = |after: Option<u64>| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let batch = store.read_raw(after, BATCH).await.map_err(|e| e.to_string())?;
            let mut parsed = Vec::with_capacity(batch.len());
            let mut texts = Vec::with_capacity(batch.len());
            for RawEvent { event, data } in batch {
                let typed = EventData::parse_json(event.event_type, &data).ok();
                parsed.push((event, typed));
                texts.push(data);
            }
            Ok::<_, String>((parsed, texts))
        })
    };
    // Reads in flight, oldest first, each with the `after` it asked for.
    let mut queue = std::collections::VecDeque::new();
    queue.push_back((after, read(after)));
    let mut backoff = Duration::from_millis(100);
    let mut full_reported = false;
    loop {
        let Some((asked, handle)) = queue.pop_front() else {
            queue.push_back((after, read(after)));
            continue;
        };
        let result = handle.await.map_err(|e| e.to_string()).and_then(|r| r);
        if asked != after {
            // Read ahead on the assumption that the batch before was full,
            // and it was not (or it failed): read again from where the views
            // are, whatever this read brought.
            for (_, h) in queue.drain(..) {
                h.abort();
            }
            queue.push_back((after, read(after)));
            continue;
        }
        let (parsed, texts) = match result {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                batch
            }
            Err(e) => {
                // A store that cannot answer now may later: retry, slower
                // each time, rather than leave the views stale for good.
                tracing::warn!(error = %e, retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "the projections cannot read the ledger; retrying");
                for (_, h) in queue.drain(..) {
                    h.abort();
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                queue.push_back((after, read(after)));
                continue;
            }
        };
        if parsed.is_empty() {
            let seen = *head.borrow_and_update();
            if !(seen.is_some() && seen > after) && head.changed().await.is_err() {
                return Ok(());
            }
            for (_, h) in queue.drain(..) {
                h.abort();
            }
            queue.push_back((after, read(after)));
            continue;
        }
        let last = parsed.last().map(|(e, _)| e.seq);
        // Read ahead while this batch is applied, as far as the log goes.
        if queue.is_empty() {
            queue.push_back((last, read(last)));
        }
        let head_now = *head.borrow();
        while queue.len() < READ_AHEAD {
            let Some((a, _)) = queue.back() else { break };
            let full_end = a.map_or(BATCH as u64 - 1, |a| a + BATCH as u64);
            if head_now.is_none_or(|h| h <= full_end) {
                break;
            }
            queue.push_back((Some(full_end), read(Some(full_end))));
        }
        if feed.receiver_count() > 0 {
            for ((event, _), data) in parsed.iter().zip(&texts) {
                let mut whole = event.clone();
                match serde_json::from_str(data) {
                    Ok(value) => whole.data = value,
                    Err(e) => {
                        // Not the subscribers' problem to stop on: the
                        // integrity check reports altered records.
                        tracing::error!(seq = event.seq, error = %e, "the stored data is not JSON; not sent to subscribers");
                        continue;
                    }
                }
                let _ = feed.send(Arc::new(whole));
            }
        }
        drop(texts);
        let full = {
            let mut v = views.write().map_err(|_| "the projections' lock is poisoned".to_owned())?;
            v.apply_batch(&parsed);
            v.index.is_full()
        };
        if full && !full_reported {
            full_reported = true;
            tracing::error!("the audit index holds 4,294,967,294 events, its most: later events are not searchable");
        }
        after = last;
        applied.send_replace(last);
    }
}
