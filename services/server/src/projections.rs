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
use shiplog_store::{EventStore, ReadQuery};
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
    pub fn apply(&mut self, event: &RecordedEvent, data: Option<EventData>) {
        self.index.apply(event, data.as_ref());
        if let Some(d) = &data {
            self.delivery.apply(event, d);
        }
        self.facts.apply_data(event.seq, data);
    }
}

/// How many new events a subscriber may fall behind before it is told it
/// lagged.
const FEED_CAPACITY: usize = 4_096;

pub struct Projections {
    views: Arc<RwLock<Views>>,
    applied: watch::Receiver<Option<u64>>,
    feed: broadcast::Sender<Arc<RecordedEvent>>,
}

impl Projections {
    /// Replay the log into fresh views, then keep following it. Returns once
    /// the replay has caught up with the head seen at start.
    pub async fn start(store: Arc<dyn EventStore>) -> Result<Arc<Projections>, String> {
        let views = Arc::new(RwLock::new(Views::default()));
        let (applied_tx, applied) = watch::channel(None);
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let projections = Arc::new(Projections { views: Arc::clone(&views), applied, feed: feed.clone() });
        let target = *store.head().borrow();
        let started = Instant::now();
        tokio::spawn(async move {
            if let Err(e) = follow(store, views, applied_tx, feed).await {
                tracing::error!(error = %e, "the projections stopped following the ledger; queries and gates are stale");
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
            _ => Err(format!("the projections did not reach seq {target} within {} s", within.as_secs())),
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
    loop {
        let batch =
            store.read(ReadQuery { after, limit: 5_000, ..ReadQuery::default() }).await.map_err(|e| e.to_string())?;
        if batch.is_empty() {
            let seen = *head.borrow_and_update();
            if seen.is_some() && seen > after {
                continue;
            }
            if head.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        // Parse outside the lock; apply under it, a batch at a time.
        let live = feed.receiver_count() > 0;
        let mut parsed = Vec::with_capacity(batch.len());
        for mut event in batch {
            let data = if live {
                let data = EventData::parse(event.event_type, event.data.clone()).ok();
                let _ = feed.send(Arc::new(event.clone()));
                data
            } else {
                EventData::parse(event.event_type, std::mem::take(&mut event.data)).ok()
            };
            parsed.push((event, data));
        }
        let last = parsed.last().map(|(e, _)| e.seq);
        {
            let mut v = views.write().map_err(|_| "the projections' lock is poisoned".to_owned())?;
            for (event, data) in parsed {
                v.apply(&event, data);
            }
        }
        after = last;
        applied.send_replace(last);
    }
}
