//! The ledger as the server runs it: the store, the checkpoint signer, and
//! what the start-up integrity check found.

use std::sync::{Arc, RwLock};

use shiplog_core::audit::{Fault, Finding};
use shiplog_core::checkpoint::{CheckpointSigner, SignedCheckpoint};
use shiplog_core::merkle::{check_tree, to_base64};
use shiplog_store::{EventStore, StoreError, StoredCheckpoint, tree};
use tokio::sync::Mutex;

use crate::{ApiError, Code};

pub struct Ledger {
    pub store: Arc<dyn EventStore>,
    /// The release gates, when policies are loaded.
    pub gates: Option<crate::gates::Gates>,
    /// Gate facts, delivery figures and the audit index, fed from the log.
    pub projections: Arc<crate::projections::Projections>,
    /// One past the seq of the last event a client appended through this
    /// server: the facts a decision must see.
    pub client_appends: std::sync::atomic::AtomicU64,
    signer: CheckpointSigner,
    /// The latest checkpoint signed; its lock also serialises signing.
    latest: Mutex<Option<SignedCheckpoint>>,
    /// What is wrong with the stored history, if anything: while set, the
    /// server takes no appends and signs nothing.
    broken: RwLock<Option<Finding>>,
}

impl Ledger {
    /// Check the stored history against its last signed checkpoint, then
    /// sign a checkpoint of everything stored. A damaged history is
    /// reported (log and `/readyz`) and leaves the ledger read-only; only a
    /// store that cannot be read at all is an error.
    pub async fn open(store: Arc<dyn EventStore>, signer: CheckpointSigner) -> Result<Ledger, StoreError> {
        let started = std::time::Instant::now();
        let report = tree::audit(store.as_ref(), |n| {
            if n % 100_000 == 0 {
                tracing::info!(events = n, "checking the stored history");
            }
        })
        .await?;
        let latest = match &report.checkpoint {
            None => None,
            Some(stored) => Some(open_stored(stored, &signer)?),
        };
        let broken = match report.verdict {
            Ok(verified) => {
                tracing::info!(
                    events = verified.records,
                    root = %to_base64(&verified.root),
                    millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "the stored history is intact"
                );
                None
            }
            Err(finding) => {
                tracing::error!(
                    seq = finding.seq,
                    fault = finding.fault.as_str(),
                    detail = %finding.detail,
                    "THE STORED HISTORY WAS ALTERED: appends are refused; reads are served for investigation"
                );
                Some(finding)
            }
        };
        let projections =
            crate::projections::Projections::start(Arc::clone(&store)).await.map_err(StoreError::Unavailable)?;
        let ledger = Ledger {
            store,
            gates: None,
            projections,
            client_appends: std::sync::atomic::AtomicU64::new(0),
            signer,
            latest: Mutex::new(latest),
            broken: RwLock::new(broken),
        };
        if ledger.integrity().is_none() {
            if let Err(e) = ledger.checkpoint().await {
                tracing::error!(error = %e, "cannot sign a checkpoint at start-up");
            }
        }
        Ok(ledger)
    }

    /// Load the release gates and start feeding their facts from the log.
    pub async fn start_gates(&mut self, config: crate::gates::PolicyConfig) -> Result<(), String> {
        let intact = self.integrity().is_none();
        self.gates = Some(
            crate::gates::Gates::start(config, Arc::clone(&self.store), Arc::clone(&self.projections), intact).await?,
        );
        Ok(())
    }

    /// What is wrong with the stored history (`None`: nothing found).
    pub fn integrity(&self) -> Option<Finding> {
        self.broken.read().ok().and_then(|b| b.clone())
    }

    fn break_with(&self, finding: Finding) {
        tracing::error!(seq = finding.seq, fault = finding.fault.as_str(), detail = %finding.detail, "integrity failure");
        if let Ok(mut b) = self.broken.write() {
            b.get_or_insert(finding);
        }
    }

    /// Refuse with 503 while the history is damaged.
    pub fn require_intact(&self) -> Result<(), ApiError> {
        match self.integrity() {
            None => Ok(()),
            Some(f) => Err(integrity_error(&f)),
        }
    }

    pub fn verifier_key(&self) -> &str {
        self.signer.verifier_key()
    }

    /// The number of events in the ledger.
    pub fn size(&self) -> u64 {
        self.store.head().borrow().map_or(0, |seq| seq + 1)
    }

    /// A signed checkpoint of the whole ledger as it is now: the latest one
    /// if nothing was appended since, else a new one, signed only after a
    /// consistency proof from the previous one checks. While the history is
    /// damaged, the last good checkpoint.
    pub async fn checkpoint(&self) -> Result<SignedCheckpoint, ApiError> {
        let mut latest = self.latest.lock().await;
        if let Some(finding) = self.integrity() {
            return latest.clone().ok_or_else(|| integrity_error(&finding));
        }
        let size = self.size();
        if let Some(cp) = latest.as_ref().filter(|cp| cp.size == size) {
            return Ok(cp.clone());
        }
        let root = tree::root(self.store.as_ref(), size).await?;
        if let Some(previous) = latest.as_ref().filter(|cp| cp.size > 0) {
            // A store that cannot answer is an error, not evidence of
            // tampering; only a proof that fails to check is.
            let proof = tree::consistency_proof(self.store.as_ref(), previous.size, size).await?;
            let consistent = check_tree(&proof, size, root, previous.size, previous.root).is_ok();
            if !consistent {
                let finding = Finding {
                    seq: None,
                    fault: Fault::RootMismatch,
                    detail: format!(
                        "the stored tree at size {size} is not an extension of the checkpoint signed at size {}",
                        previous.size
                    ),
                };
                self.break_with(finding.clone());
                return Err(integrity_error(&finding));
            }
        }
        let signed = self.signer.sign(size, root).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        self.store.save_checkpoint(StoredCheckpoint { size, root, note: signed.note.clone() }).await?;
        *latest = Some(signed.clone());
        Ok(signed)
    }
}

/// A stored checkpoint must be one this server's key signed.
fn open_stored(stored: &StoredCheckpoint, signer: &CheckpointSigner) -> Result<SignedCheckpoint, StoreError> {
    let opened = shiplog_core::checkpoint::open_checkpoint(&stored.note, signer.verifier_key()).map_err(|e| {
        StoreError::Unavailable(format!(
            "the last stored checkpoint (size {}) does not verify with this server's key: {e}; start with the key that signed it (--checkpoint-key)",
            stored.size
        ))
    })?;
    if (opened.size, opened.root) != (stored.size, stored.root) {
        return Err(StoreError::Unavailable(format!(
            "the checkpoint stored for size {} differs from its own signed note: the checkpoints table was altered; restore it from a backup",
            stored.size
        )));
    }
    Ok(opened)
}

pub fn integrity_error(f: &Finding) -> ApiError {
    let mut e = ApiError::new(
        Code::IntegrityFailure,
        format!("the stored history was altered ({f}); the ledger is read-only until it is restored from a backup"),
    )
    .with("fault", f.fault.as_str());
    if let Some(seq) = f.seq {
        e = e.with("seq", seq);
    }
    e
}
