//! `shiplog backup` and `shiplog restore`: an online copy of the embedded
//! store, checked as the server checks its store at start-up, and its way
//! back into place.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shiplog_core::merkle::to_base64;
use shiplog_store::{EventStore, SqliteStore, tree};

use crate::config::StoreUrl;
use crate::files::{partial, remove_db, remove_sidecars, sync_dir};

/// Where the ledger is: a data directory or a store URL.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The data directory of the ledger (its ledger.db) [default: ./shiplog-data]
    #[arg(long, env = "SHIPLOG_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store, as a URL (sqlite:PATH) [default: SQLite in the data directory]
    #[arg(long, env = "SHIPLOG_STORE", value_name = "URL")]
    pub store: Option<String>,
}

impl StoreArgs {
    pub fn path(&self) -> Result<PathBuf, String> {
        let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("shiplog-data"));
        match StoreUrl::parse(self.store.as_deref(), &dir)? {
            StoreUrl::Sqlite(path) => Ok(path),
            StoreUrl::Postgres(_) => Err(
                "this command works on the embedded SQLite store; back up a PostgreSQL ledger with pg_dump (or your database's own backups), \
                 and check one with `shiplog verify --store postgres://…`"
                    .into(),
            ),
            StoreUrl::Log(_) => Err("this command works on the embedded SQLite store; copy a log:DIR ledger with `shiplog migrate`".into()),
            StoreUrl::Esdb(_) => Err(
                "this command works on the embedded SQLite store; back up an EventStoreDB / KurrentDB ledger with the server's own backups, \
                 check one with `shiplog verify --store esdb://…`, or copy it with `shiplog migrate`"
                    .into(),
            ),
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:
  shiplog backup --data-dir /var/lib/shiplog --out /backups/ledger-$(date -u +%Y%m%dT%H%M%SZ).db

The server may keep running: the copy is one consistent snapshot. It is then
checked (every event against its leaf, the Merkle tree, the last signed
checkpoint) before it is given its final name.")]
pub struct BackupArgs {
    #[command(flatten)]
    from: StoreArgs,
    /// The backup file to write (must not exist)
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = "Example:
  shiplog restore --from /backups/ledger-20261128.db --data-dir /var/lib/shiplog

Stop the server first. The backup is checked again, then copied into place;
start the server with the checkpoint key that signed it.")]
pub struct RestoreArgs {
    /// The backup file (from `shiplog backup`)
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    #[command(flatten)]
    to: StoreArgs,
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// What a checked ledger file holds.
pub struct Checked {
    pub events: u64,
    pub checkpoint: Option<u64>,
    pub root: String,
    /// The last signed checkpoint's note and root, as stored.
    pub note: Option<String>,
    pub checkpoint_root: Option<shiplog_core::merkle::Hash>,
}

/// Check a ledger file as the server does at start-up.
pub fn check_file(path: &Path) -> Result<Checked, String> {
    check_store(&StoreUrl::Sqlite(path.to_owned()))
}

/// Check a ledger, wherever it is stored, as the server does at start-up.
pub fn check_store(url: &StoreUrl) -> Result<Checked, String> {
    let label = match url {
        StoreUrl::Sqlite(path) => path.display().to_string(),
        StoreUrl::Postgres(_) | StoreUrl::Esdb(_) | StoreUrl::Log(_) => format!("{url:?}"),
    };
    let rt = crate::bench::runtime()?;
    rt.block_on(async {
        let store: Arc<dyn EventStore> = match url {
            // Read-only: checking a file must not change it.
            StoreUrl::Sqlite(path) => {
                Arc::new(SqliteStore::open_read_only(path).map_err(|e| format!("cannot open {label}: {e}"))?)
            }
            other => crate::serve::open_store(other).await.map_err(|e| format!("cannot open {label}: {e}"))?,
        };
        let bar = spinner(format!("checking {label}"));
        let report = tree::audit(store.as_ref(), |n| bar.set_message(format!("checking {label}: {n} events")))
            .await
            .map_err(|e| format!("cannot read {label}: {e}"));
        bar.finish_and_clear();
        store.close().await;
        let report = report?;
        match report.verdict {
            Ok(v) => Ok(Checked {
                events: report.events,
                checkpoint: report.checkpoint.as_ref().map(|c| c.size),
                root: to_base64(&v.root),
                checkpoint_root: report.checkpoint.as_ref().map(|c| c.root),
                note: report.checkpoint.map(|c| c.note),
            }),
            Err(f) => Err(format!("{label} does not check: {f}")),
        }
    })
}

fn describe(c: &Checked) -> String {
    let cp = c.checkpoint.map_or_else(|| "no checkpoint".to_owned(), |s| format!("checkpoint at size {s} included"));
    format!("{} events, {cp}, root {}", c.events, c.root)
}

pub fn backup(args: BackupArgs) -> Result<ExitCode, String> {
    let source = args.from.path()?;
    if args.out.exists() {
        return Err(format!("{} exists; choose another --out, or remove it first", args.out.display()));
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = partial(&args.out);
    remove_db(&tmp);
    let started = Instant::now();
    let bar = spinner(format!("copying {}", source.display()));
    let copied = shiplog_store::sqlite::backup(&source, &tmp);
    bar.finish_and_clear();
    if let Err(e) = copied {
        remove_db(&tmp);
        return Err(format!("cannot back up {}: {e}", source.display()));
    }
    let checked = match check_file(&tmp) {
        Ok(c) => c,
        Err(e) => {
            remove_db(&tmp);
            return Err(format!("the copy does not check, so no backup was kept: {e}"));
        }
    };
    if checked.checkpoint.is_some_and(|c| c < checked.events) {
        eprintln!(
            "note: {} of the {} events come after the last signed checkpoint (size {}); ask GET /v1/checkpoint before a backup to have them all covered",
            checked.events - checked.checkpoint.unwrap_or(0),
            checked.events,
            checked.checkpoint.unwrap_or(0)
        );
    }
    remove_sidecars(&tmp);
    if let Err(e) = std::fs::rename(&tmp, &args.out) {
        remove_db(&tmp);
        return Err(format!("cannot rename {} to {}: {e}", tmp.display(), args.out.display()));
    }
    sync_dir(&args.out);
    eprintln!(
        "backup: {}; verified in {:.1} s -> {}",
        describe(&checked),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(args: RestoreArgs) -> Result<ExitCode, String> {
    let target = args.to.path()?;
    if target.exists() {
        return Err(format!(
            "{} exists: restore into an empty data directory (--data-dir), or move the current ledger away first",
            target.display()
        ));
    }
    // A WAL left beside the target would be replayed onto the restored
    // file by SQLite, and corrupt it.
    for p in crate::files::sidecars(&target) {
        if p.exists() {
            return Err(format!(
                "{} is left from an earlier ledger; move it away with the rest of that ledger before restoring",
                p.display()
            ));
        }
    }
    if !args.from.is_file() {
        return Err(format!("no backup at {}", args.from.display()));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = partial(&target);
    remove_db(&tmp);
    if let Err(e) = std::fs::copy(&args.from, &tmp).and_then(|_| std::fs::File::open(&tmp)?.sync_all()) {
        remove_db(&tmp);
        return Err(format!("cannot copy {} to {}: {e}", args.from.display(), tmp.display()));
    }
    let checked = match check_file(&tmp) {
        Ok(c) => c,
        Err(e) => {
            remove_db(&tmp);
            return Err(format!("the backup does not check, so nothing was restored: {e}"));
        }
    };
    remove_sidecars(&tmp);
    if let Err(e) = std::fs::rename(&tmp, &target) {
        remove_db(&tmp);
        return Err(format!("cannot rename {} to {}: {e}", tmp.display(), target.display()));
    }
    sync_dir(&target);
    eprintln!("restored: {} -> {}", describe(&checked), target.display());
    eprintln!("next: start the server on it with the checkpoint key that signed it (shiplog serve --data-dir …)");
    Ok(ExitCode::SUCCESS)
}

/// `shiplog verify --store`: check a ledger file offline, and that its last
/// checkpoint is signed by the key.
pub fn verify_store(url: &StoreUrl, key: &str) -> Result<ExitCode, String> {
    let label = match url {
        StoreUrl::Sqlite(path) if !path.is_file() => return Err(format!("no ledger at {}", path.display())),
        StoreUrl::Sqlite(path) => path.display().to_string(),
        StoreUrl::Postgres(_) | StoreUrl::Esdb(_) | StoreUrl::Log(_) => format!("{url:?}"),
    };
    let checked = match check_store(url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("NOT VERIFIED: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(note) = &checked.note else {
        eprintln!("NOT VERIFIED: {label} holds no signed checkpoint to check the key against");
        return Ok(ExitCode::FAILURE);
    };
    match shiplog_core::checkpoint::open_checkpoint(note, key) {
        // The signed note must commit to the very size and root the records
        // were checked against: a row rewritten along with the records is
        // caught here.
        Ok(cp) if Some(cp.size) == checked.checkpoint && Some(cp.root) == checked.checkpoint_root => {
            let signed = cp.size;
            let tail = checked.events.saturating_sub(signed);
            let tail = if tail == 0 {
                "every event is covered by the signed checkpoint".to_owned()
            } else {
                format!("{tail} events after the signed checkpoint at size {signed} are not covered by a signature yet")
            };
            println!("verified: {}; checkpoint signature good; {tail}", describe(&checked));
            Ok(ExitCode::SUCCESS)
        }
        Ok(cp) => {
            eprintln!(
                "NOT VERIFIED: the signed checkpoint (size {}, root {}) is not the one stored beside the records (size {:?})",
                cp.size,
                to_base64(&cp.root),
                checked.checkpoint
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("NOT VERIFIED: the stored checkpoint does not verify with this key: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
