//! `shiplog generate`: a deterministic, realistic organisation history (see
//! `shiplog_core::generate`), written as NDJSON, straight into a store, or
//! both in one pass; and the organisation's directory as Cedar entities.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use shiplog_core::generate::{GenerateConfig, Generator, MAX_DAYS, MAX_SERVICES};
use shiplog_core::{Author, NewEvent};
use shiplog_store::{EventStore, SqliteStore};

use crate::config::StoreUrl;
use crate::files::partial;

/// Events appended to a store per atomic batch.
const BATCH: usize = 5_000;
/// Who the store records as having appended the history.
const RECORDED_BY: &str = "shiplog-generate";

/// Which organisation, and how much of its history (also `shiplog bench`'s).
#[derive(Args, Debug, Clone)]
pub struct OrgArgs {
    /// Services in the organisation (teams own about five each)
    #[arg(long, default_value_t = 50)]
    pub services: usize,
    /// Days of history
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The same seed gives the same history, event for event
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    org: OrgArgs,
    /// The first day of the history (YYYY-MM-DD, UTC)
    #[arg(long, default_value = "2025-01-01", value_name = "DATE")]
    start: String,
    /// Write the events as NDJSON to this file ('-' for standard output;
    /// the default when no store is given)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Append the events to the embedded store in this data directory (it
    /// must hold no events yet)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Append the events to this store (sqlite:PATH) instead
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    store: Option<String>,
    /// Write the organisation's directory (Cedar entities: people, groups,
    /// services and their teams, environments) to this file, for --policies
    #[arg(long, value_name = "FILE")]
    directory: Option<PathBuf>,
}

pub fn run(args: GenerateArgs) -> Result<ExitCode, String> {
    if args.org.services == 0 || args.org.services > MAX_SERVICES {
        return Err(format!("--services must be between 1 and {MAX_SERVICES}, got {}", args.org.services));
    }
    if args.org.days == 0 || args.org.days > MAX_DAYS {
        return Err(format!("--days must be between 1 and {MAX_DAYS}, got {}", args.org.days));
    }
    let start = NaiveDate::parse_from_str(&args.start, "%Y-%m-%d")
        .map_err(|_| format!("--start {:?} is not a date; give YYYY-MM-DD, e.g. 2025-01-01", args.start))?;
    let config = GenerateConfig { services: args.org.services, days: args.org.days, seed: args.org.seed, start };
    let generator = Generator::new(config).map_err(|e| format!("cannot generate: {e}"))?;

    // The store first: if it is not empty, nothing else is written.
    let store_url = match (&args.data_dir, &args.store) {
        (None, None) => None,
        (dir, url) => {
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from("shiplog-data"));
            Some(StoreUrl::parse(url.as_deref(), &dir)?)
        }
    };
    let hint = if args.store.is_some() { "give another --store" } else { "give a new --data-dir" };
    let store = match &store_url {
        None => None,
        Some(StoreUrl::Sqlite(path)) => Some(open_empty(path, hint)?),
        Some(StoreUrl::Postgres(_) | StoreUrl::Esdb(_) | StoreUrl::Log(_)) => {
            return Err("shiplog generate writes into the embedded SQLite store or NDJSON; to fill PostgreSQL or EventStoreDB, \
                        generate into --data-dir DIR, then copy it with `shiplog migrate --from sqlite:DIR/ledger.db --to URL`"
                .into());
        }
    };

    if let Some(path) = &args.directory {
        let text = serde_json::to_string_pretty(&generator.directory()).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}; choose another --directory", dir.display()))?;
        }
        let tmp = partial(path);
        std::fs::write(&tmp, text + "\n").and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write the directory to {}: {e}; choose another --directory", path.display())
        })?;
    }

    // NDJSON goes to FILE.partial, renamed to FILE once complete.
    let out = match (&args.out, &store_url) {
        (Some(p), _) if p.as_os_str() == "-" => {
            Some(Output::Stdout(BufWriter::with_capacity(1 << 20, std::io::stdout())))
        }
        (Some(p), _) => Some(Output::File(
            p.clone(),
            BufWriter::with_capacity(
                1 << 20,
                File::create(partial(p))
                    .map_err(|e| format!("cannot create {}: {e}; choose another --out", p.display()))?,
            ),
        )),
        (None, None) => Some(Output::Stdout(BufWriter::with_capacity(1 << 20, std::io::stdout()))),
        (None, Some(_)) => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let started = Instant::now();
    let written = runtime.block_on(write_all(generator, out, store.clone(), args.org.days));
    // The store is closed whatever happened: what was appended is durable.
    if let Some(store) = store {
        runtime.block_on(store.close());
    }
    let file = args.out.as_ref().filter(|p| p.as_os_str() != "-");
    let summary = match written {
        Ok(n) => {
            if let Some(p) = file {
                std::fs::rename(partial(p), p)
                    .map_err(|e| format!("cannot rename the NDJSON to {}: {e}", p.display()))?;
            }
            n
        }
        Err(e) => {
            if let Some(p) = file {
                let _ = std::fs::remove_file(partial(p));
            }
            return Err(e);
        }
    };
    eprintln!(
        "generated {} events ({} services, {} days from {start}, seed {}) in {:.1} s{}",
        summary,
        args.org.services,
        args.org.days,
        args.org.seed,
        started.elapsed().as_secs_f64(),
        match (&args.out, &store_url) {
            (Some(p), _) if p.as_os_str() != "-" => format!("; NDJSON in {}", p.display()),
            _ => String::new(),
        } + &match &store_url {
            Some(StoreUrl::Sqlite(p)) => format!("; recorded in {}", p.display()),
            Some(StoreUrl::Postgres(_) | StoreUrl::Esdb(_) | StoreUrl::Log(_)) | None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Fill an empty SQLite store with a generated history; the events appended.
pub fn into_store(path: &Path, config: GenerateConfig) -> Result<u64, String> {
    let days = config.days;
    let generator = Generator::new(config).map_err(|e| format!("cannot generate: {e}"))?;
    let store = open_empty(path, "give another file")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let count = runtime.block_on(write_all(generator, None, Some(Arc::clone(&store)), days))?;
    runtime.block_on(store.close());
    Ok(count)
}

enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(PathBuf, BufWriter<File>),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) -> Result<(), String> {
        let result = match self {
            Output::Stdout(w) => w.write_all(line).and_then(|()| w.write_all(b"\n")),
            Output::File(_, w) => w.write_all(line).and_then(|()| w.write_all(b"\n")),
        };
        result.map_err(|e| self.failed(e))
    }

    fn finish(&mut self) -> Result<(), String> {
        let result = match self {
            Output::Stdout(w) => w.flush(),
            Output::File(_, w) => w.flush().and_then(|()| w.get_ref().sync_all()),
        };
        result.map_err(|e| self.failed(e))
    }

    fn failed(&self, e: std::io::Error) -> String {
        match self {
            Output::Stdout(_) => format!("cannot write to standard output: {e}"),
            Output::File(p, _) => format!("cannot write {}: {e}; is the disk full?", p.display()),
        }
    }
}

/// The store to fill: it must hold nothing yet, so that the history's
/// events are the ledger's first and nothing is mixed into another's.
fn open_empty(path: &Path, hint: &str) -> Result<Arc<SqliteStore>, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}; choose another", dir.display()))?;
    }
    let store = SqliteStore::open(path).map_err(|e| format!("cannot open the store {}: {e}", path.display()))?;
    if let Some(head) = *store.head().borrow() {
        return Err(format!(
            "the store {} already holds {} events; generate into an empty store ({hint})",
            path.display(),
            head + 1
        ));
    }
    Ok(Arc::new(store))
}

async fn write_all(
    mut generator: Generator,
    mut out: Option<Output>,
    store: Option<Arc<SqliteStore>>,
    days: u32,
) -> Result<u64, String> {
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(u64::from(days)) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} generating [{bar:30}] day {pos}/{len} {msg} ({eta} left)")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut batch: Vec<NewEvent> = Vec::with_capacity(BATCH);
    // One append in flight while the next batch is generated.
    let mut in_flight: Option<tokio::task::JoinHandle<Result<usize, String>>> = None;
    let mut count = 0u64;
    while let Some(event) = generator.next() {
        count += 1;
        if let Some(out) = out.as_mut() {
            let line = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
            out.write_line(&line)?;
        }
        if store.is_some() {
            batch.push(parse(event)?);
        }
        if let Some(store) = &store {
            if batch.len() >= BATCH {
                if let Some(previous) = in_flight.take() {
                    previous.await.map_err(|e| e.to_string())??;
                }
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                let store = Arc::clone(store);
                in_flight = Some(tokio::spawn(async move {
                    store.append(full, RECORDED_BY).await.map(|r| r.len()).map_err(|e| format!("append failed: {e}"))
                }));
            }
        }
        if count.is_multiple_of(10_000) {
            bar.set_position(u64::from(generator.days_done()));
            bar.set_message(format!("{count} events"));
        }
    }
    if let Some(previous) = in_flight.take() {
        previous.await.map_err(|e| e.to_string())??;
    }
    if let Some(store) = &store {
        if !batch.is_empty() {
            store.append(batch, RECORDED_BY).await.map_err(|e| format!("append failed: {e}"))?;
        }
        // What was asked is what is there.
        let head = *store.head().borrow();
        if count > 0 && head != Some(count - 1) {
            return Err(format!(
                "the store's last seq is {head:?} after appending {count} generated events; expected {}",
                count - 1
            ));
        }
    }
    if let Some(out) = out.as_mut() {
        out.finish()?;
    }
    bar.finish_and_clear();
    Ok(count)
}

fn parse(event: Value) -> Result<NewEvent, String> {
    NewEvent::parse(event, Author::Client)
        .map_err(|e| format!("the generator made an invalid event ({e}); please report this"))
}
