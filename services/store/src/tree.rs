//! The ledger's Merkle tree as any store keeps it: roots and proofs computed
//! from the stored hashes, and the audit of the stored history.

use std::collections::HashMap;

use shiplog_core::audit::{Audit, Finding, Verified};
use shiplog_core::merkle::{
    FetchedHashes, Hash, IndexRecorder, TreeError, indexes_read_by, prove_record, prove_tree, record_value, tree_hash,
};

use crate::{EventStore, ReadQuery, StoreError, StoredCheckpoint};

/// Run a tree computation against the store's stored hashes: find which
/// hashes it reads, fetch them in one call, run it.
async fn compute<S, T>(store: &S, f: impl Fn(&dyn Reader) -> Result<T, TreeError>) -> Result<T, StoreError>
where
    S: EventStore + ?Sized,
{
    let indexes = indexes_read_by(|r: &IndexRecorder| f(r));
    let hashes = store.tree_hashes(indexes.clone()).await?;
    let fetched = FetchedHashes(indexes.into_iter().zip(hashes).collect::<HashMap<_, _>>());
    f(&fetched).map_err(|e| StoreError::Storage(format!("the stored Merkle tree is inconsistent: {e}")))
}

/// The tree library is generic over its reader; this erases the two readers
/// `compute` uses into one type.
trait Reader {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError>;
}

impl<R: shiplog_core::merkle::HashReader> Reader for R {
    fn read(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.read_hashes(indexes)
    }
}

struct Erased<'a>(&'a dyn Reader);

impl shiplog_core::merkle::HashReader for Erased<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.0.read(indexes)
    }
}

/// The root of the first `size` events.
pub async fn root<S: EventStore + ?Sized>(store: &S, size: u64) -> Result<Hash, StoreError> {
    compute(store, |r| tree_hash(size, &Erased(r))).await
}

/// Proof that event `seq` is in the tree of the first `size` events.
pub async fn inclusion_proof<S: EventStore + ?Sized>(store: &S, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
    compute(store, |r| prove_record(size, seq, &Erased(r))).await
}

/// Proof that the tree of the first `from` events is a prefix of the tree of
/// the first `to`.
pub async fn consistency_proof<S: EventStore + ?Sized>(store: &S, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
    compute(store, |r| prove_tree(to, from, &Erased(r))).await
}

/// What the start-up check found.
#[derive(Debug, Clone)]
pub struct IntegrityReport {
    /// Events checked.
    pub events: u64,
    /// The last checkpoint the server signed, if any.
    pub checkpoint: Option<StoredCheckpoint>,
    /// `Ok` when the history is intact.
    pub verdict: Result<Verified, Finding>,
}

/// Re-check the stored log from its records alone: every event hashes to
/// its stored leaf, seqs are gap-free, the first events make the root of the
/// last signed checkpoint, and the stored tree agrees with the records.
pub async fn audit<S: EventStore + ?Sized>(
    store: &S,
    mut progress: impl FnMut(u64),
) -> Result<IntegrityReport, StoreError> {
    let checkpoint = store.latest_checkpoint().await?;
    let mut audit = match &checkpoint {
        Some(cp) => Audit::with_checkpoint_size(cp.size),
        None => Audit::new(),
    };
    let mut after = None;
    let mut events = 0u64;
    loop {
        let page = store.read(ReadQuery { after, limit: crate::MAX_READ_LIMIT, ..ReadQuery::default() }).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for event in &page {
            audit.feed(&record_value(event), event.leaf_hash);
        }
        events += page.len() as u64;
        progress(events);
    }
    let mut verdict = audit.finish_extending(checkpoint.as_ref().map(|c| (c.size, c.root)));
    if let Ok(verified) = &verdict {
        // The stored tree serves proofs and new checkpoints: it must agree
        // with the records too.
        let stored = root(store, verified.records).await;
        if stored.as_ref().ok() != Some(&verified.root) {
            verdict = Err(Finding {
                seq: None,
                fault: shiplog_core::audit::Fault::RootMismatch,
                detail: match stored {
                    Ok(_) => "the stored Merkle tree does not match the records".into(),
                    Err(e) => format!("the stored Merkle tree cannot be read: {e}"),
                },
            });
        }
    }
    Ok(IntegrityReport { events, checkpoint, verdict })
}
