//! `shiplog bench`: the ledger's performance targets, measured the same way
//! every time. Figures go to standard output as Markdown rows for
//! BENCHMARKS.md, with the command and the machine.
//!
//! - A1: durable batch appends to the embedded store (no HTTP).
//! - A2: single-event HTTP appends from many concurrent clients, each on
//!   its own keep-alive connection, against a real server on loopback.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shiplog_core::checkpoint::{CheckpointSigner, keys_from_seed};
use shiplog_core::{Author, NewEvent};
use shiplog_store::{EventStore, PostgresStore, SqliteStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Bench,
    /// Directory for the benchmark's temporary stores (on the disk to be
    /// measured; a tmpfs would make fsync free)
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// Keep the benchmark's stores and files (their directory is printed)
    #[arg(long, global = true)]
    keep: bool,
    /// Run A1 and A2 on PostgreSQL instead of SQLite: a fresh database per
    /// run on the server this URL names (postgres://USER@HOST:5432/ANY_DATABASE),
    /// dropped afterwards
    #[arg(long, global = true, value_name = "URL")]
    postgres: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// A1: durable batch append, embedded (target ≥ 100,000 events/s)
    A1 {
        /// Events appended per round
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events per batch
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Rounds, each on a fresh store; the median is reported
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Batches in flight at once (appenders sharing the group commit)
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
    },
    /// V1: offline verify of an export (target ≤ 3 s for 1,000,000 events),
    /// and the latency of inclusion and consistency proofs on that ledger
    V1 {
        /// Events in the ledger and its export
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Verification runs; the median is reported
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// D1: gate decisions over HTTP at a fixed rate (target p99 ≤ 2 ms at
    /// 2,000 req/s), and the in-process decision time beside a bare Cedar call
    D1 {
        /// Requests per second, sent on schedule whatever the answers' pace
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds measured
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Connections the requests are spread over
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// The policies directory
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
    },
    /// R1: replay of a generated history into the projections, in a fresh
    /// process (target ≤ 5 s and ≤ 512 MiB RSS for 1,000,000 events)
    R1 {
        #[command(flatten)]
        history: HistoryArgs,
        /// Replays, each in a fresh process; the median is reported
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Q1: DORA queries over GraphQL on a generated history (target p95
    /// ≤ 20 ms over 1,000,000 events, one year, 50 services)
    Q1 {
        #[command(flatten)]
        history: HistoryArgs,
        /// Queries measured per kind, one after another on one connection
        #[arg(long, default_value_t = 300)]
        queries: usize,
        /// The policies directory (its directory of people and teams is
        /// replaced by the generated one)
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
    },
    /// Every benchmark (A1, A2, D1, Q1, R1, V1), each in a fresh process;
    /// their figures replace the latest run's section of BENCHMARKS.md
    All {
        /// The Markdown file whose generated section is rewritten
        #[arg(long, default_value = "BENCHMARKS.md", value_name = "FILE")]
        out: PathBuf,
        /// Keep the generated history (R1, Q1) in this file and reuse it
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// Smaller sizes and shorter runs: a smoke test of the runner, not
        /// figures to compare with the targets
        #[arg(long)]
        quick: bool,
        /// The policies directory (D1, Q1)
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
    },
    /// One replay in this process, as JSON (what R1 runs, once per round)
    #[command(hide = true)]
    Replay {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// A2: single-event HTTP appends, concurrent clients, durable (target
    /// ≥ 10,000 events/s, p99 ≤ 10 ms)
    A2 {
        /// Concurrent clients, each with its own connection
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds measured, after the warm-up
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of warm-up, not measured
        #[arg(long, default_value_t = 2)]
        warmup: u64,
    },
}

pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    let dir = tempfile::Builder::new().prefix(".shiplog-bench-").tempdir_in(&args.dir).map_err(|e| {
        format!("cannot create a directory for the benchmark in {}: {e}; pick one with --dir", args.dir.display())
    })?;
    let dir = if args.keep {
        let kept = dir.keep();
        eprintln!("keeping the benchmark's files in {}", kept.display());
        Kept::Path(kept)
    } else {
        Kept::Temp(dir)
    };
    match args.which {
        Bench::A1 { events, batch, rounds, in_flight } => {
            a1(dir.path(), events, batch.max(1), rounds.max(1), in_flight.max(1), args.postgres.as_deref())
        }
        Bench::D1 { rate, seconds, connections, policies } => {
            d1(dir.path(), rate.max(1), seconds.max(1), connections.max(1), &policies)
        }
        Bench::V1 { events, rounds } => v1(dir.path(), events.max(1), rounds.max(1)),
        Bench::A2 { clients, seconds, warmup } => {
            a2(dir.path(), clients.max(1), seconds.max(1), warmup, args.postgres.as_deref())
        }
        Bench::R1 { history, rounds } => r1(dir.path(), &history, rounds.max(1)),
        Bench::Q1 { history, queries, policies } => q1(dir.path(), &history, queries.max(1), &policies),
        Bench::Replay { db } => replay(&db),
        Bench::All { out, history, quick, policies } => all(dir.path(), &out, history, quick, &policies),
    }
}

/// The markers around the section `bench all` writes.
const BEGIN: &str = "<!-- shiplog bench all: begin (generated; rerun the command below to refresh) -->";
const END: &str = "<!-- shiplog bench all: end -->";

/// Run every benchmark as `shiplog bench …` in a child process (each on a
/// fresh runtime and heap), collect the Markdown rows they print, and
/// rewrite the generated section of `out`.
fn all(
    dir: &std::path::Path,
    out: &std::path::Path,
    history: Option<PathBuf>,
    quick: bool,
    policies: &std::path::Path,
) -> Result<ExitCode, String> {
    if quick && out.file_name().is_some_and(|n| n == "BENCHMARKS.md") {
        return Err(
            "a --quick run's figures are not the targets' measure: give --out FILE for them, not BENCHMARKS.md".into(),
        );
    }
    let given_history = history.is_some();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let history = history.unwrap_or_else(|| dir.join("history.db"));
    let history = history.to_string_lossy().into_owned();
    let policies = policies.to_string_lossy().into_owned();
    let policies_arg = policies.clone();
    let d = dir.to_string_lossy().into_owned();
    let org: Vec<&str> = if quick { vec!["--services", "5", "--days", "30"] } else { vec![] };
    let mut runs: Vec<(&str, Vec<String>)> = vec![
        ("A1", vec!["a1".into()]),
        ("A1", vec!["a1".into(), "--in-flight".into(), "4".into()]),
        ("A2", vec!["a2".into()]),
        ("D1", vec!["d1".into(), "--policies".into(), policies.clone()]),
        ("V1", vec!["v1".into()]),
        ("R1", vec!["r1".into(), "--history".into(), history.clone()]),
        ("Q1", vec!["q1".into(), "--history".into(), history.clone(), "--policies".into(), policies]),
    ];
    for (_, args) in &mut runs {
        if matches!(args[0].as_str(), "r1" | "q1") {
            args.extend(org.iter().map(|s| (*s).to_owned()));
        }
        if !quick && args[0] == "r1" {
            args.extend(["--rounds".to_owned(), "5".to_owned()]);
        }
        if quick {
            let extra: &[&str] = match args[0].as_str() {
                "a1" => &["--events", "20000", "--rounds", "2"],
                "a2" => &["--seconds", "2", "--warmup", "1"],
                "d1" => &["--seconds", "2", "--rate", "500"],
                "v1" => &["--events", "20000", "--rounds", "1"],
                "r1" => &["--rounds", "1"],
                "q1" => &["--queries", "20"],
                _ => &[],
            };
            args.extend(extra.iter().map(|s| (*s).to_owned()));
        }
        args.extend(["--dir".to_owned(), d.clone()]);
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failed = 0;
    for (i, (id, args)) in runs.iter().enumerate() {
        eprintln!("[{}/{}] {id}: shiplog bench {}", i + 1, runs.len(), args.join(" "));
        let output = std::process::Command::new(&exe)
            .arg("bench")
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {id}: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let printed: Vec<String> = text.lines().filter(|l| l.starts_with("| ")).map(str::to_owned).collect();
        if !output.status.success() || printed.is_empty() {
            failed += 1;
            rows.push(format!(
                "| {id} | `shiplog bench {}` | failed (exit {:?}) | — |",
                args.join(" "),
                output.status.code()
            ));
        }
        rows.extend(printed);
    }
    let mut command = "target/release/shiplog bench all".to_owned();
    if quick {
        command.push_str(" --quick");
    }
    if given_history {
        command.push_str(&format!(" --history {history}"));
    }
    if policies_arg != "policies" {
        command.push_str(&format!(" --policies {policies_arg}"));
    }
    if out != std::path::Path::new("BENCHMARKS.md") {
        command.push_str(&format!(" --out {}", out.display()));
    }
    let section = format!(
        "{BEGIN}\n## Latest run\n\nCommand: `{command}` (from the repository root, after `cargo build --release`; {:.0} s in all).\n\nMachine: {}.\n\nDate: {} (UTC).{}\n\n| id | what | figure | target |\n|---|---|---|---|\n{}\n{END}",
        started.elapsed().as_secs_f64(),
        machine(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        if quick { " **Quick run: smaller sizes, not comparable with the targets.**" } else { "" },
        rows.join("\n"),
    );
    let current = std::fs::read_to_string(out).unwrap_or_default();
    let updated = replace_section(&current, &section);
    std::fs::write(out, updated).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {} rows to {}", rows.len(), out.display());
    if failed > 0 {
        eprintln!("{failed} benchmark(s) failed; their rows say so");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` with the generated section replaced by `section`, or, when it has
/// none, inserted after the first heading's paragraph.
fn replace_section(text: &str, section: &str) -> String {
    if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
        if b < e {
            return format!("{}{section}{}", &text[..b], &text[e + END.len()..]);
        }
    }
    // After the title and the introduction (the first blank line after the
    // second paragraph), else at the end.
    match text.find("\n## ") {
        Some(i) => format!("{}{section}\n\n{}", &text[..=i], &text[i + 1..]),
        None => format!("{text}\n{section}\n"),
    }
}

/// The machine, as far as Linux says.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned())))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or_else(|| "unknown memory".to_owned(), |kb| format!("{} GiB", kb / (1024 * 1024)));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {model}, {mem}, Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_section_is_replaced_in_place() {
        let doc = "# Benchmarks\n\nIntro.\n\n## Appends\n\nold\n";
        let once = replace_section(doc, &format!("{BEGIN}\nfirst\n{END}"));
        assert!(once.starts_with("# Benchmarks\n\nIntro.\n\n<!--"), "{once}");
        assert!(once.contains("first") && once.contains("## Appends\n\nold"), "{once}");
        let twice = replace_section(&once, &format!("{BEGIN}\nsecond\n{END}"));
        assert!(twice.contains("second") && !twice.contains("first"), "{twice}");
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(twice.contains("## Appends\n\nold"));
    }
}

enum Kept {
    Temp(tempfile::TempDir),
    Path(PathBuf),
}

impl Kept {
    fn path(&self) -> &std::path::Path {
        match self {
            Kept::Temp(t) => t.path(),
            Kept::Path(p) => p,
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// A realistic mix of what pipelines record, `n` events with fresh ids.
fn sample_events(n: usize) -> Result<Vec<NewEvent>, String> {
    (0..n).map(|i| NewEvent::parse(sample_event(i), Author::Client).map_err(|e| e.to_string())).collect()
}

/// Event `i` of a stream of pipeline runs: each run is a commit, a build,
/// tests, a scan, the artifact's publication and a staging deployment, for
/// one of 50 services. Ids are random (UUID v4), as many clients make them.
fn sample_event(i: usize) -> Value {
    let run = i / 6;
    let service = format!("svc-{:02}", run % 50);
    let sha = format!("{:040x}", (run as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
    let artifact = format!("sha256:{sha}{}", &sha[..24]);
    let commits = json!([{"sha": sha, "authoredAt": "2026-11-20T09:00:00Z"}]);
    let (kind, data) = match i % 6 {
        0 => (
            "commit.pushed",
            json!({"repo": format!("org/{service}"), "sha": sha, "author": "u-1042",
                                     "authoredAt": "2026-11-20T09:00:00Z", "branch": "main"}),
        ),
        1 => (
            "build.finished",
            json!({"pipeline": service, "runId": run.to_string(), "sha": sha,
                                      "outcome": "success", "artifact": artifact}),
        ),
        2 => (
            "tests.finished",
            json!({"artifact": artifact, "suite": "unit", "kind": "unit",
                                      "passed": 412, "failed": 0, "skipped": 3, "outcome": "success"}),
        ),
        3 => (
            "scan.finished",
            json!({"artifact": artifact, "scanner": "trivy", "kind": "image",
                                     "critical": 0, "high": 1, "medium": 4, "low": 9}),
        ),
        4 => (
            "artifact.published",
            json!({"artifact": artifact, "service": service,
                                          "version": format!("1.{run}.0"), "commits": commits}),
        ),
        _ => (
            "deployment.succeeded",
            json!({"deploymentId": format!("d-{run}"), "service": service,
                                            "environment": "staging", "artifact": artifact,
                                            "version": format!("1.{run}.0"), "strategy": "rolling"}),
        ),
    };
    json!({"id": uuid::Uuid::new_v4().to_string(), "type": kind, "occurredAt": "2026-11-20T10:00:00Z",
           "actor": "ci-bot", "source": format!("https://ci.example.com/runs/{run}"), "data": data})
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn a1(
    dir: &std::path::Path,
    events: usize,
    batch: usize,
    rounds: usize,
    in_flight: usize,
    postgres: Option<&str>,
) -> Result<ExitCode, String> {
    let rt = runtime()?;
    let mut rates = Vec::new();
    let mut batch_p99 = Vec::new();
    for round in 0..rounds {
        let batches: Vec<Vec<NewEvent>> = sample_events(events)?.chunks(batch).map(<[NewEvent]>::to_vec).collect();
        let path = dir.join(format!("a1-{round}.db"));
        let scratch = format!("shiplog_bench_a1_{}_{round}", std::process::id());
        let store: Arc<dyn EventStore> = match postgres {
            None => Arc::new(SqliteStore::open(&path).map_err(|e| e.to_string())?),
            Some(server) => rt.block_on(async {
                let url =
                    shiplog_store::postgres::create_database(server, &scratch).await.map_err(|e| e.to_string())?;
                PostgresStore::open(&url).await.map(|s| Arc::new(s) as Arc<dyn EventStore>).map_err(|e| e.to_string())
            })?,
        };
        let (elapsed, mut latencies) = rt.block_on(async {
            // `in_flight` appenders take batches in turn from one queue.
            let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..in_flight {
                let (queue, store) = (Arc::clone(&queue), Arc::clone(&store));
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let next = queue.lock().map_err(|_| "queue poisoned".to_owned())?.next();
                        let Some(chunk) = next else { break };
                        let t = Instant::now();
                        store.append(chunk, "bench").await.map_err(|e| e.to_string())?;
                        latencies.push(t.elapsed());
                    }
                    Ok::<_, String>(latencies)
                }));
            }
            let mut latencies = Vec::new();
            for t in tasks {
                latencies.extend(t.await.map_err(|e| e.to_string())??);
            }
            let elapsed = started.elapsed();
            store.close().await;
            Ok::<_, String>((elapsed, latencies))
        })?;
        if let Some(server) = postgres {
            rt.block_on(shiplog_store::postgres::drop_database(server, &scratch)).map_err(|e| e.to_string())?;
        }
        latencies.sort();
        let rate = events as f64 / elapsed.as_secs_f64();
        let p99 = percentile(&latencies, 99.0);
        eprintln!("A1 round {}/{rounds}: {rate:.0} events/s (batch p99 {:.1} ms)", round + 1, p99.as_secs_f64() * 1e3);
        rates.push(rate);
        batch_p99.push(p99.as_secs_f64() * 1e3);
    }
    let rate = median(rates);
    let verdict = if rate >= 100_000.0 { "meets" } else { "misses" };
    println!(
        "| A1 | durable batch append, {} ({events} events in batches of {batch}, {in_flight} in flight, median of {rounds} rounds) | {rate:.0} events/s; batch p99 {:.1} ms | ≥ 100,000 events/s ({verdict}) |",
        if postgres.is_some() { "PostgreSQL" } else { "embedded SQLite" },
        median(batch_p99)
    );
    Ok(ExitCode::SUCCESS)
}

/// Fill a fresh embedded store with `events` sample events, fast: batches
/// of 10,000, four in flight.
fn fill(rt: &tokio::runtime::Runtime, path: &std::path::Path, events: usize) -> Result<Arc<SqliteStore>, String> {
    let store = Arc::new(SqliteStore::open(path).map_err(|e| e.to_string())?);
    let bar = indicatif::ProgressBar::new(events as u64);
    rt.block_on(async {
        let mut done = 0;
        while done < events {
            let n = (events - done).min(40_000);
            let batches: Vec<Vec<NewEvent>> =
                sample_events_from(done, n)?.chunks(10_000).map(<[NewEvent]>::to_vec).collect();
            let mut tasks = Vec::new();
            for batch in batches {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move { store.append(batch, "bench").await.map(|r| r.len()) }));
            }
            for t in tasks {
                let appended = t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                bar.inc(appended as u64);
            }
            done += n;
        }
        Ok::<_, String>(())
    })?;
    bar.finish_and_clear();
    Ok(store)
}

fn sample_events_from(start: usize, n: usize) -> Result<Vec<NewEvent>, String> {
    (start..start + n).map(|i| NewEvent::parse(sample_event(i), Author::Client).map_err(|e| e.to_string())).collect()
}

fn v1(dir: &std::path::Path, events: usize, rounds: usize) -> Result<ExitCode, String> {
    let rt = runtime()?;
    eprintln!("V1: recording {events} events…");
    let store = fill(&rt, &dir.join("v1.db"), events)?;
    let size = events as u64;
    let (skey, vkey) = keys_from_seed("bench.shiplog.local/ledger", [42; 32]).map_err(|e| e.to_string())?;
    let signer = CheckpointSigner::new(&skey, &vkey).map_err(|e| e.to_string())?;

    // The export, as `shiplog export` writes it.
    let export = dir.join("v1.ndjson");
    let key = dir.join("v1.pub");
    std::fs::write(&key, &vkey).map_err(|e| e.to_string())?;
    let started = Instant::now();
    rt.block_on(async {
        let root = shiplog_store::tree::root(store.as_ref(), size).await.map_err(|e| e.to_string())?;
        let cp = signer.sign(size, root).map_err(|e| e.to_string())?;
        let file = std::fs::File::create(&export).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut after = None;
        loop {
            let page = store
                .read(shiplog_store::ReadQuery { after, limit: 10_000, ..Default::default() })
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            for e in &page {
                serde_json::to_writer(&mut out, e).map_err(|e| e.to_string())?;
                out.write_all(b"\n").map_err(|e| e.to_string())?;
            }
        }
        serde_json::to_writer(&mut out, &json!({"checkpoint": cp.note})).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())
    })?;
    let bytes = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);
    eprintln!("V1: export written in {:.1} s ({} MiB)", started.elapsed().as_secs_f64(), bytes >> 20);

    let mut times = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        let code = crate::audit::verify_export(&export, &std::fs::read_to_string(&key).map_err(|e| e.to_string())?)?;
        let secs = t.elapsed().as_secs_f64();
        if code != ExitCode::SUCCESS {
            return Err("the benchmark's export did not verify".into());
        }
        eprintln!("V1 round {}/{rounds}: {secs:.2} s", round + 1);
        times.push(secs);
    }
    let secs = median(times);
    let verdict = if secs <= 3.0 { "meets" } else { "misses" };
    println!(
        "| V1 | offline verify of a {events}-event export ({} MiB), median of {rounds} runs | {secs:.2} s | ≤ 3 s ({verdict}) |",
        bytes >> 20
    );

    // Proof latency, straight from the store (no HTTP), on the same ledger.
    let (inclusion, consistency) = rt.block_on(async {
        let mut inclusion = Vec::new();
        let mut consistency = Vec::new();
        for i in 0..1_000u64 {
            let seq = i.wrapping_mul(2_654_435_761) % size;
            let t = Instant::now();
            shiplog_store::tree::inclusion_proof(store.as_ref(), seq, size).await.map_err(|e| e.to_string())?;
            inclusion.push(t.elapsed());
            let from = 1 + i.wrapping_mul(40_503) % size;
            let t = Instant::now();
            shiplog_store::tree::consistency_proof(store.as_ref(), from, size).await.map_err(|e| e.to_string())?;
            consistency.push(t.elapsed());
        }
        Ok::<_, String>((inclusion, consistency))
    })?;
    for (name, mut lat) in [("inclusion", inclusion), ("consistency", consistency)] {
        lat.sort();
        println!(
            "| proofs | {name} proof in a {events}-event tree, from the store, 1,000 calls | p50 {:.3} ms; p99 {:.3} ms | — |",
            percentile(&lat, 50.0).as_secs_f64() * 1e3,
            percentile(&lat, 99.0).as_secs_f64() * 1e3
        );
    }
    rt.block_on(store.close());
    Ok(ExitCode::SUCCESS)
}

fn a2(
    dir: &std::path::Path,
    clients: usize,
    seconds: u64,
    warmup: u64,
    postgres: Option<&str>,
) -> Result<ExitCode, String> {
    let scratch = format!("shiplog_bench_a2_{}", std::process::id());
    let pg_url = match postgres {
        None => None,
        Some(server) => Some(
            runtime()?
                .block_on(shiplog_store::postgres::create_database(server, &scratch))
                .map_err(|e| e.to_string())?,
        ),
    };
    let (addr, server) = BenchServer::start_on(&dir.join("a2.db"), None, pg_url)?;

    // The load generator runs on one thread so that it takes at most one of
    // the machine's cores away from the server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = rt.block_on(async move {
        let warm_until = Instant::now() + Duration::from_secs(warmup);
        let stop_at = warm_until + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut conn = BufReader::new(stream);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = c;
                loop {
                    let now = Instant::now();
                    if now >= stop_at {
                        break;
                    }
                    let body = serde_json::to_vec(&sample_event(i)).unwrap_or_default();
                    i += clients;
                    let status = post(&mut conn, &body).await?;
                    if now >= warm_until {
                        latencies.push(now.elapsed());
                        if status != 201 {
                            errors += 1;
                        }
                    }
                }
                Ok::<_, std::io::Error>((latencies, errors))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, err) = t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            all.extend(lat);
            errors += err;
        }
        Ok::<_, String>((all, errors))
    });
    server.stop();
    if let Some(server) = postgres {
        runtime()?.block_on(shiplog_store::postgres::drop_database(server, &scratch)).map_err(|e| e.to_string())?;
    }
    let (mut latencies, errors) = result?;
    latencies.sort();
    let rate = latencies.len() as f64 / seconds as f64;
    let p50 = percentile(&latencies, 50.0).as_secs_f64() * 1e3;
    let p99 = percentile(&latencies, 99.0).as_secs_f64() * 1e3;
    let verdict = if rate >= 10_000.0 && p99 <= 10.0 { "meets" } else { "misses" };
    println!(
        "| A2 | single-event HTTP appends, {clients} clients, durable, {} ({seconds} s after {warmup} s warm-up) | {rate:.0} events/s; p50 {p50:.2} ms; p99 {p99:.2} ms; {errors} errors | ≥ 10,000 events/s, p99 ≤ 10 ms ({verdict}) |",
        if postgres.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

fn d1(
    dir: &std::path::Path,
    rate: u64,
    seconds: u64,
    connections: usize,
    policies: &std::path::Path,
) -> Result<ExitCode, String> {
    use shiplog_policy::{GateAction, PolicyEngine, PolicySources};
    // In process first: the engine's decide() beside the bare Cedar call.
    let engine = PolicyEngine::load(&PolicySources::read_dir(policies, None).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let context = shiplog_policy::GateContext {
        service: "checkout".into(),
        artifact: "sha256:bench".into(),
        in_maintenance_window: true,
        staging_succeeded: true,
        tests_passed: true,
        scanned: true,
        approved_by_other: true,
        ..Default::default()
    };
    let bare =
        engine.bare_authorizer("u-1005", GateAction::Deploy, "production", &context).map_err(|e| e.to_string())?;
    let time = |f: &dyn Fn()| {
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            for _ in 0..1_000 {
                f();
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6 / 1_000.0);
        }
        median(samples)
    };
    let decide_us = time(&|| {
        let _ = engine.decide("u-1005", GateAction::Deploy, "production", &context);
    });
    let bare_us = time(&|| {
        let _ = bare();
    });
    // What every API request adds: the token's digest and the access
    // policy's answer for its role and action (cached after the first).
    let access = shiplog_policy::access::AccessPolicy::builtin().map_err(|e| e.to_string())?;
    let access_us = time(&|| {
        let _ = shiplog_server::auth::digest(BENCH_TOKEN);
        let principal =
            shiplog_policy::access::Principal::Token { name: "ci-main", role: shiplog_policy::access::Role::Pipeline };
        let _ = access.allows(principal, shiplog_policy::access::ApiAction::Decide);
    });

    // Over HTTP: a real server on loopback, with the facts recorded.
    let (addr, server) = BenchServer::start(&dir.join("d1.db"), Some(policies.to_owned()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let artifact = "sha256:d1bench";
    let facts: Vec<Value> = vec![
        json!({"type": "deployment.succeeded", "data": {"deploymentId": "stg-1", "service": "checkout", "environment": "staging", "artifact": artifact, "version": "1"}}),
        json!({"type": "tests.finished", "data": {"artifact": artifact, "suite": "unit", "kind": "unit", "passed": 1, "failed": 0, "skipped": 0, "outcome": "success"}}),
        json!({"type": "scan.finished", "data": {"artifact": artifact, "scanner": "trivy", "kind": "image", "critical": 0, "high": 0, "medium": 0, "low": 0}}),
        json!({"type": "approval.granted", "data": {"approver": "u-1002", "scope": "deployment", "service": "checkout", "environment": "production", "artifact": artifact}}),
    ];
    let result = rt.block_on(async move {
        // Wait for the server, then record the facts.
        let mut conn = loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => break BufReader::new(s),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        for mut f in facts {
            f["id"] = json!(uuid::Uuid::new_v4().to_string());
            f["occurredAt"] = json!("2026-11-20T10:00:00Z");
            f["actor"] = json!("ci-main");
            let body = serde_json::to_vec(&f).unwrap_or_default();
            let status = post_to(&mut conn, "/v1/events", &body).await.map_err(|e| e.to_string())?;
            if status != 201 {
                return Err(format!("recording a fact answered {status}"));
            }
        }
        let body = serde_json::to_vec(&json!({"principal": "u-1005", "action": "deploy",
            "resource": {"service": "checkout", "environment": "production", "artifact": artifact}}))
        .unwrap_or_default();
        // Open loop: request i is due at start + i/rate, on connection i % connections.
        let start = Instant::now() + Duration::from_millis(200);
        let total = rate * seconds;
        let mut tasks = Vec::new();
        for c in 0..connections {
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut conn = BufReader::new(stream);
                let mut latencies = Vec::new();
                let mut denied = 0u64;
                let mut i = c as u64;
                while i < total {
                    let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let status = post_to(&mut conn, "/v1/decisions", &body).await?;
                    // From when it was due: a late start counts against the server.
                    latencies.push(due.elapsed());
                    if status != 200 {
                        denied += 1;
                    }
                    i += connections as u64;
                }
                Ok::<_, std::io::Error>((latencies, denied))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, err) = t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            all.extend(lat);
            errors += err;
        }
        Ok::<_, String>((all, errors, start.elapsed()))
    });
    server.stop();
    let (mut latencies, errors, elapsed) = result?;
    latencies.sort();
    let achieved = latencies.len() as f64 / elapsed.as_secs_f64();
    let p50 = percentile(&latencies, 50.0).as_secs_f64() * 1e3;
    let p99 = percentile(&latencies, 99.0).as_secs_f64() * 1e3;
    let verdict = if p99 <= 2.0 { "meets" } else { "misses" };
    println!(
        "| D1 | gate decisions over HTTP, open loop at {rate} req/s for {seconds} s on {connections} connections, each recorded durably as decision.recorded | {achieved:.0} req/s; p50 {p50:.2} ms; p99 {p99:.2} ms; {errors} non-200 | p99 ≤ 2 ms at 2,000 req/s ({verdict}) |"
    );
    println!(
        "| D1 | in process: PolicyEngine::decide (request, evaluation, reasons) beside a bare Authorizer::is_authorized on the same request, median of 20 × 1,000 calls | decide {decide_us:.1} µs; bare is_authorized {bare_us:.1} µs | — |"
    );
    println!(
        "| D1 | in process: what access control adds to every request (the token's SHA-256 and the access policy's cached answer), median of 20 × 1,000 calls | {access_us:.2} µs | — |"
    );
    Ok(ExitCode::SUCCESS)
}

/// The benchmarks' server's admin token (a throwaway ledger).
const BENCH_TOKEN: &str = "slt_benchmark-token-for-a-throwaway-ledger";

/// The real server, in this process on its own thread, on loopback port 0,
/// with a fixed checkpoint key and, if given, the release gates.
struct BenchServer {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl BenchServer {
    fn start(db: &std::path::Path, policies: Option<PathBuf>) -> Result<(std::net::SocketAddr, BenchServer), String> {
        Self::start_on(db, policies, None)
    }

    /// On the SQLite file `db`, or on PostgreSQL when `postgres` is given.
    fn start_on(
        db: &std::path::Path,
        policies: Option<PathBuf>,
        postgres: Option<String>,
    ) -> Result<(std::net::SocketAddr, BenchServer), String> {
        let sqlite = match postgres {
            None => Some(SqliteStore::open(db).map_err(|e| e.to_string())?),
            Some(_) => None,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                // PostgreSQL's connections live on the runtime that opens them.
                let store: Arc<dyn EventStore> = match (sqlite, postgres) {
                    (Some(sqlite), _) => Arc::new(sqlite),
                    (None, Some(url)) => {
                        Arc::new(PostgresStore::open(&url).await.map_err(|e| std::io::Error::other(e.to_string()))?)
                    }
                    (None, None) => return Err(std::io::Error::other("no store")),
                };
                let signer = keys_from_seed("bench.shiplog.local/ledger", [42; 32])
                    .and_then(|(skey, vkey)| CheckpointSigner::new(&skey, &vkey))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut ledger = shiplog_server::Ledger::open(Arc::clone(&store), signer)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                if let Some(dir) = policies {
                    ledger
                        .start_gates(shiplog_server::PolicyConfig { dir, entities: None })
                        .await
                        .map_err(std::io::Error::other)?;
                }
                let shutdown = async move {
                    let _ = stopped.await;
                };
                // Every request authenticates (and is authorised by the
                // access policy) as in production; the per-token rate limit
                // is off, or it would be what the benchmark measures.
                let config = shiplog_server::ServerConfig {
                    auth: shiplog_server::AuthConfig {
                        admin_token: Some(BENCH_TOKEN.to_owned()),
                        rate_limit: shiplog_server::RateLimit { per_second: 0, burst: 0 },
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let opened = shiplog_server::auth::Auth::open(&ledger, config.auth.clone())
                    .await
                    .map_err(std::io::Error::other)?;
                let served = shiplog_server::serve(listener, ledger, opened.auth, config, shutdown).await;
                store.close().await;
                served
            })
        });
        Ok((addr, BenchServer { stop, thread }))
    }

    fn stop(self) {
        let _ = self.stop.send(());
        if let Ok(Err(e)) = self.thread.join() {
            eprintln!("the benchmark's server failed: {e}");
        }
    }
}

/// One HTTP/1.1 POST of an event on a kept-alive connection; the status.
async fn post(conn: &mut BufReader<tokio::net::TcpStream>, body: &[u8]) -> std::io::Result<u16> {
    post_to(conn, "/v1/events", body).await
}

/// One HTTP/1.1 POST of a JSON body on a kept-alive connection; the status.
async fn post_to(conn: &mut BufReader<tokio::net::TcpStream>, path: &str, body: &[u8]) -> std::io::Result<u16> {
    post_for(conn, path, body).await.map(|(status, _)| status)
}

/// One HTTP/1.1 POST of a JSON body on a kept-alive connection; the status
/// and the response body.
async fn post_for(
    conn: &mut BufReader<tokio::net::TcpStream>,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {BENCH_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    conn.get_mut().write_all(&request).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut rest = vec![0; length];
    conn.read_exact(&mut rest).await?;
    Ok((status, rest))
}

/// The generated history R1 and Q1 run on.
#[derive(Args, Debug, Clone)]
struct HistoryArgs {
    #[command(flatten)]
    org: crate::generate::OrgArgs,
    /// Keep the generated store in this file and reuse it on later runs
    /// (generating 1,000,000 events takes a minute or two)
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

impl HistoryArgs {
    fn config(&self) -> shiplog_core::generate::GenerateConfig {
        shiplog_core::generate::GenerateConfig {
            services: self.org.services,
            days: self.org.days,
            seed: self.org.seed,
            ..Default::default()
        }
    }

    /// The store holding the history, generated unless `--history` names
    /// one that already holds events; and how many events it holds.
    fn store(&self, dir: &std::path::Path) -> Result<(PathBuf, u64), String> {
        let path = self.history.clone().unwrap_or_else(|| dir.join("history.db"));
        // What the history was generated with, beside it: a history kept for
        // other settings, or one whose generation did not finish, is not
        // reused as if it were this one.
        let described = crate::files::with_suffix(&path, ".json");
        let wanted = json!({"services": self.org.services, "days": self.org.days, "seed": self.org.seed,
                            "generator": shiplog_core::generate::GENERATOR_VERSION});
        if path.exists() {
            let kept: Option<Value> =
                std::fs::read_to_string(&described).ok().and_then(|t| serde_json::from_str(&t).ok());
            if kept.as_ref() != Some(&wanted) {
                return Err(format!(
                    "{} was not generated with these settings ({wanted}; it says {}); delete it, or give another --history",
                    path.display(),
                    kept.map_or_else(|| "nothing".to_owned(), |k| k.to_string())
                ));
            }
            let store = SqliteStore::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let head = *store.head().borrow();
            if let Some(head) = head {
                eprintln!("reusing the {} events in {} (delete it to generate again)", head + 1, path.display());
                return Ok((path, head + 1));
            }
        }
        eprintln!(
            "generating {} services × {} days (seed {}) into {}…",
            self.org.services,
            self.org.days,
            self.org.seed,
            path.display()
        );
        // Into FILE.partial, renamed once complete.
        let tmp = crate::files::partial(&path);
        crate::files::remove_db(&tmp);
        let events = crate::generate::into_store(&tmp, self.config())?;
        crate::files::remove_sidecars(&path);
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))?;
        crate::files::remove_sidecars(&tmp);
        std::fs::write(&described, wanted.to_string() + "\n")
            .map_err(|e| format!("cannot write {}: {e}", described.display()))?;
        Ok((path, events))
    }

    fn describe(&self, events: u64) -> String {
        format!(
            "{events} generated events ({} services, {} days, seed {})",
            self.org.services, self.org.days, self.org.seed
        )
    }
}

/// This process's resident set and its peak, in KiB (Linux).
fn memory_kib() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One replay: open the store, rebuild every projection from the log.
fn replay(db: &std::path::Path) -> Result<ExitCode, String> {
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(db).map_err(|e| format!("cannot open {}: {e}", db.display()))?);
    let events = store.head().borrow().map_or(0, |h| h + 1);
    let rt = runtime()?;
    let (rss_before, _) = memory_kib();
    let started = Instant::now();
    let projections = rt.block_on(shiplog_server::Projections::start(Arc::clone(&store)))?;
    let seconds = started.elapsed().as_secs_f64();
    let applied = projections.applied().map_or(0, |a| a + 1);
    let (rss, peak) = memory_kib();
    println!(
        "{}",
        json!({"events": events, "applied": applied, "seconds": seconds, "rssKib": rss, "peakRssKib": peak,
                 "rssBeforeKib": rss_before})
    );
    drop(projections);
    rt.block_on(store.close());
    Ok(ExitCode::SUCCESS)
}

fn r1(dir: &std::path::Path, history: &HistoryArgs, rounds: usize) -> Result<ExitCode, String> {
    let (db, events) = history.store(dir)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    let mut rss = Vec::new();
    for round in 1..=rounds {
        let out = std::process::Command::new(&exe)
            .args(["bench", "--dir"])
            .arg(dir)
            .args(["replay", "--db"])
            .arg(&db)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!("replay {round} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let report: Value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or("the replay printed no report")?;
        if report["applied"] != report["events"] {
            return Err(format!("replay {round} applied {} of {} events", report["applied"], report["events"]));
        }
        let seconds = report["seconds"].as_f64().unwrap_or(f64::NAN);
        eprintln!("replay {round}/{rounds}: {seconds:.2} s, peak RSS {} KiB", report["peakRssKib"]);
        times.push(seconds);
        peaks.extend(report["peakRssKib"].as_u64());
        rss.extend(report["rssKib"].as_u64());
    }
    let median_s = median(times);
    let peak_mib = peaks.iter().max().map_or(f64::NAN, |k| *k as f64 / 1024.0);
    let rss_mib = rss.iter().max().map_or(f64::NAN, |k| *k as f64 / 1024.0);
    let scaled = median_s * 1_000_000.0 / events.max(1) as f64;
    let verdict = if scaled <= 5.0 && peak_mib <= 512.0 { "meets" } else { "misses" };
    println!(
        "| R1 | replay of {} from SQLite into the projections (gate facts, DORA, audit index), in a fresh process, median of {rounds} | {median_s:.2} s ({scaled:.2} s per 1,000,000); peak RSS {peak_mib:.0} MiB, {rss_mib:.0} MiB after | ≤ 5 s, ≤ 512 MiB ({verdict}) |",
        history.describe(events)
    );
    Ok(ExitCode::SUCCESS)
}

fn q1(
    dir: &std::path::Path,
    history: &HistoryArgs,
    queries: usize,
    policies: &std::path::Path,
) -> Result<ExitCode, String> {
    let (db, events) = history.store(dir)?;
    // The policies, with the generated organisation as their directory.
    let generator = shiplog_core::generate::Generator::new(history.config())?;
    let with_directory = dir.join("q1-policies");
    std::fs::create_dir_all(&with_directory).map_err(|e| e.to_string())?;
    let entries = std::fs::read_dir(policies)
        .map_err(|e| format!("cannot read the policies in {}: {e}; give --policies DIR", policies.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "cedar" || e == "cedarschema") {
            std::fs::copy(&path, with_directory.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
    }
    let directory = generator.directory();
    std::fs::write(with_directory.join("entities.json"), directory.to_string()).map_err(|e| e.to_string())?;
    let team = directory
        .as_array()
        .and_then(|a| a.iter().find(|e| e["uid"]["type"] == "Shiplog::Service"))
        .map(|e| (e["attrs"]["team"].clone(), e["uid"]["id"].clone()))
        .ok_or("the generated directory has no service")?;
    let start = generator.config().start.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or("bad start")?;
    let end = start + chrono::Duration::days(i64::from(history.org.days));
    let (from, to) = (start.to_rfc3339(), end.to_rfc3339());

    eprintln!("Q1: starting a server on the history (integrity check and replay first)…");
    let opening = Instant::now();
    let (addr, server) = BenchServer::start(&db, Some(with_directory))?;
    let query = "query($f: DoraFilter) { dora(filter: $f) { deployments deploymentFrequency \
        leadTime { median p90 count } changeFailRate failedDeployments recoveryTime { median p90 count } \
        unrecoveredFailures reworkRate bands { deploymentFrequency leadTime changeFailRate recoveryTime } \
        trend { start deployments leadTime { median p90 } changeFailRate recoveryTime { median } reworkRate } } }";
    let kinds: Vec<(&str, Value)> = vec![
        ("every service, the year", json!({"from": from, "to": to})),
        ("every service, the year, weekly trend", json!({"from": from, "to": to, "bucket": "WEEK"})),
        ("one team, the year, monthly trend", json!({"team": team.0, "from": from, "to": to, "bucket": "MONTH"})),
        ("one service, the year", json!({"service": team.1, "from": from, "to": to})),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = rt.block_on(async move {
        let stream = loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = BufReader::new(stream);
        let mut results = Vec::new();
        let mut ready = None;
        for (name, filter) in &kinds {
            let body = serde_json::to_vec(&json!({"query": query, "variables": {"f": filter}})).unwrap_or_default();
            let mut latencies = Vec::with_capacity(queries);
            let mut answer = Value::Null;
            for i in 0..queries + 20 {
                let t = Instant::now();
                let (status, reply) = post_for(&mut conn, "/graphql", &body).await.map_err(|e| e.to_string())?;
                let took = t.elapsed();
                ready.get_or_insert_with(|| opening.elapsed());
                if status != 200 || reply.windows(9).any(|w| w == b"\"errors\":") {
                    return Err(format!("{name}: {status} {}", String::from_utf8_lossy(&reply)));
                }
                if i == 0 {
                    answer = serde_json::from_slice(&reply).unwrap_or_default();
                }
                // The first 20 warm the caches and are not counted.
                if i >= 20 {
                    latencies.push(took);
                }
            }
            latencies.sort();
            results.push((*name, latencies, answer));
        }
        Ok::<_, String>((results, ready.unwrap_or_default()))
    });
    server.stop();
    let (results, ready) = result?;
    eprintln!("the server answered its first query {:.1} s after it was started", ready.as_secs_f64());
    for (name, latencies, answer) in results {
        let p50 = percentile(&latencies, 50.0).as_secs_f64() * 1e3;
        let p95 = percentile(&latencies, 95.0).as_secs_f64() * 1e3;
        let p99 = percentile(&latencies, 99.0).as_secs_f64() * 1e3;
        let d = &answer["data"]["dora"];
        let verdict = if p95 <= 20.0 { "meets" } else { "misses" };
        println!(
            "| Q1 | DORA over GraphQL (POST /graphql, one keep-alive connection, {queries} sequential queries after 20 warm-up): {name}, on {} | p50 {p50:.2} ms; p95 {p95:.2} ms; p99 {p99:.2} ms ({} deployments, {} trend points) | p95 ≤ 20 ms ({verdict}) |",
            history.describe(events),
            d["deployments"],
            d["trend"].as_array().map_or(0, Vec::len),
        );
    }
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}
