//! The store contract: what every backend must do, checked the same way for
//! each. A backend's test calls [`run`] with a function that opens a fresh,
//! empty store.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};
use shiplog_core::{Author, EventType, NewEvent};
use uuid::Uuid;

use crate::{AppendError, EventStore, ReadQuery};

pub fn event(kind: &str, data: Value) -> Value {
    json!({
        "id": Uuid::new_v4().to_string(),
        "type": kind,
        "occurredAt": "2026-11-20T10:00:00Z",
        "actor": "u-1042",
        "source": "https://ci.example.com/runs/42",
        "data": data,
    })
}

pub fn parse(raw: Value) -> NewEvent {
    NewEvent::parse(raw, Author::Client).unwrap()
}

pub fn deployment_json(service: &str) -> Value {
    event(
        "deployment.succeeded",
        json!({"deploymentId": Uuid::new_v4().to_string(), "service": service, "environment": "production",
               "artifact": "sha256:abc", "version": "1.0.0"}),
    )
}

pub fn deployments(n: usize, service: &str) -> Vec<NewEvent> {
    (0..n).map(|_| parse(deployment_json(service))).collect()
}

fn with_expected(mut raw: Value, v: i64) -> NewEvent {
    raw["expectedVersion"] = json!(v);
    parse(raw)
}

/// Run every contract case, each on a fresh store from `open`. `G` keeps
/// whatever the store needs alive (a temporary directory, a database).
pub async fn run<S, G, F, Fut>(open: F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    let (s, _g) = open().await;
    appended_events_read_back_as_sent(&s).await;
    let (s, _g) = open().await;
    same_id_same_content_is_a_duplicate(&s).await;
    let (s, _g) = open().await;
    same_id_other_content_conflicts(&s).await;
    let (s, _g) = open().await;
    expected_version_guards_a_stream(&s).await;
    let (s, _g) = open().await;
    a_failing_batch_records_nothing(&s).await;
    let (s, _g) = open().await;
    concurrent_appends_get_gap_free_seqs(Arc::new(s)).await;
    let (s, _g) = open().await;
    reads_filter_by_stream_type_and_position(&s).await;
    let (s, _g) = open().await;
    tail_sees_new_events(Arc::new(s)).await;
    let (s, _g) = open().await;
    the_log_is_a_merkle_tree(&s).await;
}

async fn appended_events_read_back_as_sent<S: EventStore>(store: &S) {
    let raw = deployment_json("checkout");
    let sent = parse(raw.clone());
    let receipts = store.append(vec![sent.clone()], "ci-main").await.unwrap();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0];
    assert_eq!((r.seq, r.stream_version, r.duplicate), (0, 0, false));
    assert_eq!(r.stream, "deploy/checkout/production");
    assert_eq!(*store.head().borrow(), Some(0));

    let read = store.read(ReadQuery { limit: 10, ..ReadQuery::default() }).await.unwrap();
    assert_eq!(read.len(), 1);
    let e = &read[0];
    assert_eq!(e.id, sent.id);
    assert_eq!(e.event_type, EventType::DeploymentSucceeded);
    assert_eq!(e.data, raw["data"]);
    assert_eq!(e.recorded_by, "ci-main");
    assert_eq!(e.actor, "u-1042");
    assert_eq!(e.source.as_deref(), Some("https://ci.example.com/runs/42"));
    assert_eq!(e.recorded_at, r.recorded_at);
    assert_eq!(e.occurred_at, sent.occurred_at);
    assert_eq!(store.stream_version("deploy/checkout/production").await.unwrap(), Some(0));
    assert_eq!(store.stream_version("deploy/nothing/here").await.unwrap(), None);
    store.check().await.unwrap();
}

async fn same_id_same_content_is_a_duplicate<S: EventStore>(store: &S) {
    let raw = deployment_json("checkout");
    let first = store.append(vec![parse(raw.clone())], "ci").await.unwrap();
    // A retry with a now-stale expectedVersion is still the same event.
    let retry = store.append(vec![with_expected(raw.clone(), -1)], "ci").await.unwrap();
    assert!(retry[0].duplicate);
    assert_eq!(
        (retry[0].seq, retry[0].stream_version, retry[0].recorded_at, &retry[0].stream),
        (first[0].seq, first[0].stream_version, first[0].recorded_at, &first[0].stream)
    );
    // The same event twice in one batch, beside a new one.
    let again = parse(raw);
    let new = parse(deployment_json("checkout"));
    let mixed = store.append(vec![again.clone(), new, again], "ci").await.unwrap();
    assert_eq!(mixed.iter().map(|r| (r.seq, r.duplicate)).collect::<Vec<_>>(), [(0, true), (1, false), (0, true)]);
    assert_eq!(store.read(ReadQuery { limit: 100, ..ReadQuery::default() }).await.unwrap().len(), 2);
}

async fn same_id_other_content_conflicts<S: EventStore>(store: &S) {
    let raw = deployment_json("checkout");
    store.append(vec![parse(raw.clone())], "ci").await.unwrap();
    let mut other = raw.clone();
    other["data"]["version"] = json!("2.0.0");
    let err = store.append(vec![parse(deployment_json("x")), parse(other)], "ci").await.unwrap_err();
    assert!(matches!(err, AppendError::IdConflict { index: 1, .. }), "{err:?}");
    assert_eq!(store.read(ReadQuery { limit: 100, ..ReadQuery::default() }).await.unwrap().len(), 1);
}

async fn expected_version_guards_a_stream<S: EventStore>(store: &S) {
    let stream = "deploy/checkout/production";
    store.append(vec![with_expected(deployment_json("checkout"), -1)], "ci").await.unwrap();
    let err = store.append(vec![with_expected(deployment_json("checkout"), -1)], "ci").await.unwrap_err();
    assert_eq!(
        err,
        match &err {
            AppendError::VersionConflict { id, .. } => AppendError::VersionConflict {
                index: 0,
                id: *id,
                stream: stream.into(),
                expected: -1,
                current: Some(0)
            },
            other => panic!("expected a version conflict, got {other:?}"),
        }
    );
    let ok = store.append(vec![with_expected(deployment_json("checkout"), 0)], "ci").await.unwrap();
    assert_eq!(ok[0].stream_version, 1);
    let err = store.append(vec![with_expected(deployment_json("checkout"), 0)], "ci").await.unwrap_err();
    assert!(matches!(err, AppendError::VersionConflict { current: Some(1), expected: 0, .. }), "{err:?}");
    let err = store.append(vec![with_expected(deployment_json("billing"), 3)], "ci").await.unwrap_err();
    assert!(matches!(err, AppendError::VersionConflict { current: None, expected: 3, .. }), "{err:?}");
    // Within one batch, each expectation sees the events before it.
    let batch = vec![with_expected(deployment_json("billing"), -1), with_expected(deployment_json("billing"), 0)];
    let receipts = store.append(batch, "ci").await.unwrap();
    assert_eq!(receipts.iter().map(|r| r.stream_version).collect::<Vec<_>>(), [0, 1]);
}

async fn a_failing_batch_records_nothing<S: EventStore>(store: &S) {
    store.append(deployments(2, "checkout"), "ci").await.unwrap();
    let mut batch = deployments(5, "checkout");
    batch.push(with_expected(deployment_json("checkout"), 99));
    let err = store.append(batch, "ci").await.unwrap_err();
    assert!(matches!(err, AppendError::VersionConflict { index: 5, .. }), "{err:?}");
    assert_eq!(*store.head().borrow(), Some(1));
    assert_eq!(store.stream_version("deploy/checkout/production").await.unwrap(), Some(1));
    // The next append takes the next seq: no gap where the batch failed.
    let next = store.append(deployments(1, "checkout"), "ci").await.unwrap();
    assert_eq!((next[0].seq, next[0].stream_version), (2, 2));
}

async fn concurrent_appends_get_gap_free_seqs<S: EventStore>(store: Arc<S>) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let service = format!("svc-{}", i % 7);
            store.append(deployments(1, &service), "ci").await.unwrap()[0].seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
    let all = store.read(ReadQuery { limit: 1000, ..ReadQuery::default() }).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..200).collect::<Vec<u64>>());
    // Stream versions are gap-free per stream too.
    for s in 0..7 {
        let events = store.read_stream(&format!("deploy/svc-{s}/production"), 0, 1000).await.unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>());
    }
}

async fn reads_filter_by_stream_type_and_position<S: EventStore>(store: &S) {
    let mut batch = deployments(3, "checkout");
    batch.push(parse(event(
        "incident.opened",
        json!({"incidentId": "INC-1", "service": "checkout", "environment": "production", "severity": "sev2"}),
    )));
    batch.extend(deployments(2, "billing"));
    store.append(batch, "ci").await.unwrap();

    let seqs = |events: Vec<shiplog_core::RecordedEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    let q = |after, limit, stream: Option<&str>, event_type| ReadQuery {
        after,
        limit,
        stream: stream.map(str::to_owned),
        event_type,
    };
    assert_eq!(seqs(store.read(q(None, 100, None, None)).await.unwrap()), [0, 1, 2, 3, 4, 5]);
    assert_eq!(seqs(store.read(q(Some(2), 100, None, None)).await.unwrap()), [3, 4, 5]);
    assert_eq!(seqs(store.read(q(Some(0), 2, None, None)).await.unwrap()), [1, 2]);
    assert_eq!(seqs(store.read(q(Some(5), 100, None, None)).await.unwrap()), Vec::<u64>::new());
    assert_eq!(seqs(store.read(q(None, 100, Some("deploy/billing/production"), None)).await.unwrap()), [4, 5]);
    assert_eq!(seqs(store.read(q(Some(4), 100, Some("deploy/billing/production"), None)).await.unwrap()), [5]);
    assert_eq!(seqs(store.read(q(None, 100, None, Some(EventType::IncidentOpened))).await.unwrap()), [3]);
    assert_eq!(
        seqs(
            store
                .read(q(None, 100, Some("deploy/checkout/production"), Some(EventType::DeploymentSucceeded)))
                .await
                .unwrap()
        ),
        [0, 1, 2]
    );
    let stream = store.read_stream("deploy/checkout/production", 1, 100).await.unwrap();
    assert_eq!(stream.iter().map(|e| (e.seq, e.stream_version)).collect::<Vec<_>>(), [(1, 1), (2, 2)]);
}

async fn tail_sees_new_events<S: EventStore>(store: Arc<S>) {
    store.append(deployments(2, "checkout"), "ci").await.unwrap();
    let follower = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            crate::follow(store.as_ref(), Some(0), |e| {
                seen.push(e.seq);
                seen.len() < 4
            })
            .await
            .unwrap();
            seen
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store.append(deployments(1, "checkout"), "ci").await.unwrap();
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), follower).await.unwrap().unwrap();
    assert_eq!(seen, [1, 2, 3, 4]);
}

async fn the_log_is_a_merkle_tree<S: EventStore>(store: &S) {
    use shiplog_core::merkle::{MemoryTree, check_record, check_tree, leaf_hash};

    let mut receipts = Vec::new();
    for n in [1, 2, 5, 9, 1] {
        receipts.extend(store.append(deployments(n, "checkout"), "ci").await.unwrap());
    }
    // A duplicate's receipt carries the original leaf hash.
    let events = store.read(ReadQuery { limit: 100, ..ReadQuery::default() }).await.unwrap();
    let mut tree = MemoryTree::new();
    for (event, receipt) in events.iter().zip(&receipts) {
        let leaf = leaf_hash(event).unwrap();
        assert_eq!(event.leaf_hash, Some(leaf), "seq {}: the stored leaf is the record's hash", event.seq);
        assert_eq!(receipt.leaf_hash, leaf, "seq {}: the receipt carries the leaf", event.seq);
        tree.push(leaf).unwrap();
    }
    let size = tree.size();
    assert_eq!(size, 18);
    for n in [1, 7, 18] {
        assert_eq!(crate::tree::root(store, n).await.unwrap(), tree.root(n).unwrap(), "root of {n}");
    }
    let root = tree.root(size).unwrap();
    let proof = crate::tree::inclusion_proof(store, 5, size).await.unwrap();
    check_record(&proof, size, root, 5, events[5].leaf_hash.unwrap()).unwrap();
    let proof = crate::tree::consistency_proof(store, 7, size).await.unwrap();
    check_tree(&proof, size, root, 7, tree.root(7).unwrap()).unwrap();

    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let cp = crate::StoredCheckpoint { size, root, note: "note".into() };
    store
        .save_checkpoint(crate::StoredCheckpoint { size: 7, root: tree.root(7).unwrap(), note: "n7".into() })
        .await
        .unwrap();
    store.save_checkpoint(cp.clone()).await.unwrap();
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp));

    let report = crate::tree::audit(store, |_| {}).await.unwrap();
    assert_eq!(report.events, 18);
    assert_eq!(report.verdict.unwrap().root, root);
}

/// Two stores on one shared ledger (two processes): 16 tasks, alternating
/// between them, append 10 batches of 3 each; every seq 0..479 is handed
/// out once, and each store's head reaches the last.
pub async fn two_writers_share_one_order<S: EventStore>(a: &Arc<S>, b: &Arc<S>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { Arc::clone(a) } else { Arc::clone(b) };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..10 {
                let r = store.append(deployments(3, &format!("svc-{}", i % 3)), "t").await.unwrap();
                seqs.extend(r.iter().map(|r| r.seq));
            }
            seqs
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..480).collect::<Vec<_>>(), "every seq once, none missing");
    for store in [a, b] {
        let mut head = store.head();
        tokio::time::timeout(std::time::Duration::from_secs(5), head.wait_for(|h| *h == Some(479)))
            .await
            .unwrap()
            .unwrap();
    }
}
