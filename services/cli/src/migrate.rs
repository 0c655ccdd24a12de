//! `shiplog migrate`: copy a ledger to another store, record for record:
//! the same seqs, ids, times, recordedBy, digests and leaf hashes, and the
//! last signed checkpoint; then prove the copy has the same Merkle roots.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shiplog_core::merkle::to_base64;
use shiplog_store::{EventStore, SqliteStore, tree};

use crate::config::StoreUrl;

/// Records per read and per copying transaction.
const PAGE: usize = 5_000;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  shiplog migrate --from sqlite:shiplog-data/ledger.db --to postgres://shiplog:…@db:5432/ledger
  shiplog migrate --from postgres://…@old-db/ledger --to postgres://…@new-db/ledger
  shiplog migrate --from postgres://…@db/ledger --to sqlite:restored/ledger.db
  shiplog migrate --from sqlite:shiplog-data/ledger.db --to esdb://es:2113   (built with --features eventstore)

Stop the servers writing to --from first: what is appended after the copy
starts is not copied. --to must be an empty PostgreSQL database, a SQLite
file that does not exist yet, or an EventStoreDB / KurrentDB server without
a shiplog ledger. The copy keeps every record and its leaf hash, and the
last signed checkpoint; start the servers on --to with the same
--checkpoint-key.")]
pub struct MigrateArgs {
    /// The ledger to copy: sqlite:PATH, postgres://… or esdb://…
    #[arg(long, value_name = "URL")]
    from: String,
    /// Where to copy it: an empty PostgreSQL database (postgres://…), a new
    /// SQLite file (sqlite:PATH) or EventStoreDB / KurrentDB (esdb://…)
    #[arg(long, value_name = "URL")]
    to: String,
}

pub fn run(args: MigrateArgs) -> Result<ExitCode, String> {
    let here = std::path::Path::new(".");
    let from = StoreUrl::parse(Some(&args.from), here).map_err(|e| e.replace("--store", "--from"))?;
    let to = StoreUrl::parse(Some(&args.to), here).map_err(|e| e.replace("--store", "--to"))?;
    if let StoreUrl::Sqlite(path) = &to {
        if path.exists() {
            return Err(format!(
                "--to {}: the file exists; shiplog migrate copies into a new SQLite file (or an empty PostgreSQL \
                 database, or EventStoreDB); to copy the embedded store as it is, use shiplog backup",
                path.display()
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            return Err(format!(
                "--to {}: the directory {} does not exist; create it first",
                path.display(),
                dir.display()
            ));
        }
    }
    if let StoreUrl::Sqlite(path) = &from {
        if !path.is_file() {
            return Err(format!("--from: no ledger at {}", path.display()));
        }
    }
    let rt = crate::bench::runtime()?;
    rt.block_on(async {
        let source: Arc<dyn EventStore> = match &from {
            // Read-only: copying must not change the original.
            StoreUrl::Sqlite(path) => Arc::new(
                SqliteStore::open_read_only(path).map_err(|e| format!("cannot open --from {}: {e}", path.display()))?,
            ),
            other => crate::serve::open_store(other).await.map_err(|e| format!("cannot open --from {from:?}: {e}"))?,
        };
        let target = crate::serve::open_store(&to).await.map_err(|e| format!("cannot open --to {to:?}: {e}"))?;
        let result = copy(source.as_ref(), target.as_ref(), &from, &to).await;
        source.close().await;
        target.close().await;
        result
    })
}

async fn copy(
    source: &dyn EventStore,
    target: &dyn EventStore,
    from: &StoreUrl,
    to: &StoreUrl,
) -> Result<ExitCode, String> {
    if let Some(last) = *target.head().borrow() {
        return Err(format!("--to {to:?} already holds a ledger ({} events); copy into an empty database", last + 1));
    }
    let total = source.head().borrow().map_or(0, |last| last + 1);
    let checkpoint = source.latest_checkpoint().await.map_err(|e| format!("cannot read --from: {e}"))?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} copying [{bar:30}] {pos}/{len} events ({per_sec}, {eta} left)")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut after = None;
    let mut copied = 0u64;
    while copied < total {
        let page = source.read_records(after, PAGE).await.map_err(|e| format!("cannot read --from: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.raw.event.seq);
        // Only what existed when the copy began.
        let page: Vec<_> = page.into_iter().filter(|r| r.raw.event.seq < total).collect();
        let n = page.len() as u64;
        target.import(page).await.map_err(|e| {
            format!("cannot copy into --to after {copied} events: {e}; the copy is incomplete: run again into an empty store (for PostgreSQL, drop and re-create the database; for SQLite, delete the file)")
        })?;
        copied += n;
        bar.set_position(copied);
    }
    bar.finish_and_clear();
    if copied != total {
        return Err(format!("--from held {total} events but only {copied} could be read"));
    }

    // The copy's roots are the original's, and so is its last checkpoint.
    let checking = ProgressBar::new_spinner();
    checking.set_message("comparing the Merkle roots");
    let (ours, theirs) = if total == 0 {
        (None, None)
    } else {
        let a = tree::root(source, total).await.map_err(|e| format!("cannot compute --from's root: {e}"))?;
        let b = tree::root(target, total).await.map_err(|e| format!("cannot compute --to's root: {e}"))?;
        (Some(a), Some(b))
    };
    if ours != theirs {
        checking.finish_and_clear();
        eprintln!("NOT COPIED: the roots differ after {total} events; run again into an empty store");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(cp) = checkpoint.clone() {
        let size = cp.size;
        let at = tree::root(target, size).await.map_err(|e| format!("cannot compute --to's root at {size}: {e}"))?;
        if at != cp.root {
            checking.finish_and_clear();
            eprintln!("NOT COPIED: the copy's root at size {size} is not the one --from's checkpoint signed");
            return Ok(ExitCode::FAILURE);
        }
        target.save_checkpoint(cp).await.map_err(|e| format!("cannot copy the checkpoint: {e}"))?;
    }
    checking.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "copied {total} events from {from:?} to {to:?} in {secs:.1} s ({:.0} events/s); roots match{}{}",
        total as f64 / secs.max(1e-9),
        ours.map(|r| format!(": {}", to_base64(&r))).unwrap_or_default(),
        checkpoint.map(|c| format!("; checkpoint at size {} copied", c.size)).unwrap_or_default(),
    );
    Ok(ExitCode::SUCCESS)
}
