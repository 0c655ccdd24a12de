//! `shiplog export` and `shiplog verify`: take the ledger's history away
//! from the server, and check it without trusting the server.
//!
//! An export is NDJSON: one recorded event per line (with its `leafHash`),
//! in `seq` order, then one line `{"checkpoint": "<signed note>"}` that
//! commits to exactly those events.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use shiplog_core::audit::{Audit, Fault, Finding};
use shiplog_core::checkpoint::{SignedCheckpoint, open_checkpoint, read_unverified};
use shiplog_core::merkle::{Hash, check_tree, from_base64, from_hex, to_base64};

use crate::client::{Client, ServerArgs};

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Where to write the export (NDJSON)
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["file", "since", "store"])))]
#[command(after_help = "Examples:
  shiplog verify ledger.ndjson --key shiplog.pub
      recompute every leaf and the root from the records; check the checkpoint's signature
  shiplog verify --server https://shiplog.example.com --since kept.checkpoint --key shiplog.pub --update
      prove that the server's log extends a checkpoint kept earlier, then keep the new one
  shiplog verify --store sqlite:/var/lib/shiplog/ledger.db --key shiplog.pub
      check a ledger file (a restored backup) as the server does at start-up, and its checkpoint's signature

The key is the verifier key, as served at GET /v1/checkpoint/key.
Exit status: 0 verified, 1 not verified (the reason names the first bad seq), 2 usage.")]
pub struct VerifyArgs {
    /// An export to verify offline
    file: Option<PathBuf>,
    /// A file holding the log's verifier key (<origin>+<key id>+<base64>)
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
    /// A checkpoint kept earlier: prove the server's current log extends it
    #[arg(long, value_name = "CHECKPOINT_FILE")]
    since: Option<PathBuf>,
    /// A ledger file to verify offline (sqlite:PATH): a backup, or a restored store
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// With --since: once proven, replace the kept checkpoint with the new one
    #[arg(long, requires = "since")]
    update: bool,
    #[command(flatten)]
    server: ServerArgs,
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"
    ))
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

pub fn export(args: ExportArgs) -> Result<ExitCode, String> {
    let client = Client::new(&args.server)?;
    let note = client.get_text("/v1/checkpoint").map_err(|e| e.to_string())?;
    let (origin, size, root) = read_unverified(&note).map_err(|e| format!("the server's checkpoint: {e}"))?;

    let tmp = args.out.with_extension("partial");
    let file = File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bar = progress(size, "exporting");
    let mut written = 0u64;
    let mut after: i64 = -1;
    'pages: while written < size {
        let page = client.get_ndjson(&format!("/v1/events?after={after}&limit=10000")).map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        for line in page.lines().filter(|l| !l.is_empty()) {
            let seq = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("seq").and_then(Value::as_i64))
                .ok_or_else(|| "the server sent an event without a seq".to_owned())?;
            if u64::try_from(seq).map_or(true, |s| s >= size) {
                break 'pages;
            }
            after = seq;
            writeln!(out, "{line}").map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            written += 1;
            bar.inc(1);
        }
    }
    writeln!(out, "{}", json!({"checkpoint": note})).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let file = out.into_inner().map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.sync_all().map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "exported {written} events of {origin} to {} (checkpoint: size {size}, root {})",
        args.out.display(),
        to_base64(&root)
    );
    if written != size {
        eprintln!(
            "warning: the server holds {written} events below its checkpoint's size {size}; `shiplog verify` will say which are missing"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> Result<ExitCode, String> {
    let key = std::fs::read_to_string(&args.key).map_err(|e| {
        format!("cannot read the key file {}: {e}; get the key from GET /v1/checkpoint/key", args.key.display())
    })?;
    let key = key.trim();
    if let Some(store) = &args.store {
        let url = crate::config::StoreUrl::parse(Some(store), Path::new("."))?;
        return crate::backup::verify_store(&url, key);
    }
    match (&args.file, &args.since) {
        (Some(file), _) => verify_export(file, key),
        (None, Some(since)) => verify_extension(&args, since, key),
        (None, None) => Err("give an export FILE, or --since CHECKPOINT_FILE with --server".into()),
    }
}

fn fail(message: String) -> Result<ExitCode, String> {
    eprintln!("NOT VERIFIED: {message}");
    Ok(ExitCode::FAILURE)
}

/// One line of an export, parsed and hashed.
enum Line {
    /// `record` is kept only when it does not match its claimed leaf.
    Record {
        record: Option<Value>,
        hashed: Result<(u64, Hash), String>,
        claimed: Option<Hash>,
    },
    Checkpoint(String),
    Blank,
    Bad(String),
}

fn parse_line(number: u64, line: &str) -> Line {
    use shiplog_core::canonical::Json;
    if line.trim().is_empty() {
        return Line::Blank;
    }
    let Ok(Json::Object(mut record)) = serde_json::from_str::<Json>(line) else {
        return Line::Bad(format!("line {number} is not a JSON object"));
    };
    if let Some(note) = record.remove("checkpoint") {
        return Line::Checkpoint(match note {
            Json::String(s) => s,
            _ => String::new(),
        });
    }
    let claimed = match record.remove("leafHash") {
        None => None,
        Some(Json::String(h)) => match from_hex(&h) {
            Some(h) => Some(h),
            None => return Line::Bad(format!("line {number}: leafHash is not a hex SHA-256")),
        },
        Some(_) => return Line::Bad(format!("line {number}: leafHash is not a string")),
    };
    let record = Json::Object(record);
    let hashed = shiplog_core::audit::hash_json_record(&record);
    let matches = match (&hashed, claimed) {
        (Ok((_, leaf)), Some(claimed)) => *leaf == claimed,
        _ => true,
    };
    // Dropped here, on the thread that parsed it, unless it is needed.
    Line::Record { record: (!matches).then(|| record.to_value()), hashed, claimed }
}

/// Lines read and hashed per step; each step's lines are hashed on two
/// threads, then fed to the audit in order.
const CHUNK: usize = 8_192;

pub fn verify_export(path: &Path, key: &str) -> Result<ExitCode, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(bytes, "verifying");
    let mut audit = Audit::new();
    let mut checkpoint: Option<String> = None;
    // A reader thread reads the next chunk of lines while this one's are
    // hashed (on this thread and one more) and fed to the audit in order.
    let (chunks, incoming) = std::sync::mpsc::sync_channel::<Result<(u64, String), String>>(2);
    let reader_bar = bar.clone();
    let display = path.display().to_string();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut number = 0u64;
        loop {
            // CHUNK lines, appended to one buffer.
            let first = number + 1;
            let mut text = String::with_capacity(CHUNK * 600);
            let mut lines = 0;
            while lines < CHUNK {
                match reader.read_line(&mut text) {
                    Ok(0) => break,
                    Ok(n) => {
                        reader_bar.inc(n as u64);
                        lines += 1;
                    }
                    Err(e) => {
                        let _ = chunks.send(Err(format!("cannot read {display}: {e}")));
                        return;
                    }
                }
            }
            number += lines as u64;
            if chunks.send(Ok((first, text))).is_err() || lines < CHUNK {
                return;
            }
        }
    });
    for chunk in incoming {
        let (first_number, text) = chunk?;
        let chunk: Vec<(u64, &str)> = (first_number..).zip(text.split_inclusive('\n')).collect();
        let (first, second) = chunk.split_at(chunk.len() / 2);
        let (first, second) = std::thread::scope(|scope| {
            let other = scope.spawn(|| second.iter().map(|(n, l)| parse_line(*n, l)).collect::<Vec<_>>());
            let mine: Vec<Line> = first.iter().map(|(n, l)| parse_line(*n, l)).collect();
            (mine, other.join().unwrap_or_default())
        });
        for line in first.into_iter().chain(second) {
            match line {
                Line::Blank => {}
                Line::Bad(why) => {
                    bar.finish_and_clear();
                    return fail(format!("{}: {why}", path.display()));
                }
                Line::Checkpoint(note) => {
                    if checkpoint.replace(note).is_some() {
                        bar.finish_and_clear();
                        return fail("a second checkpoint line; an export holds one".into());
                    }
                }
                Line::Record { record, hashed, claimed } => {
                    audit.feed_hashed(hashed, claimed, || record.unwrap_or(Value::Null));
                }
            }
        }
    }
    let _ = reader.join();
    bar.finish_and_clear();
    let Some(note) = checkpoint else {
        return fail(format!("{} has no checkpoint line; was it made by `shiplog export`?", path.display()));
    };
    let cp = match open_checkpoint(&note, key) {
        Ok(cp) => cp,
        Err(e) => return fail(format!("the export's checkpoint: {e}")),
    };
    match audit.finish(Some((cp.size, cp.root))) {
        Ok(v) => {
            println!(
                "verified: {} events of {}, root {}, checkpoint signature good",
                v.records,
                cp.origin,
                to_base64(&v.root)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(finding) => fail(finding.to_string()),
    }
}

fn verify_extension(args: &VerifyArgs, since: &Path, key: &str) -> Result<ExitCode, String> {
    let kept = std::fs::read_to_string(since).map_err(|e| format!("cannot read {}: {e}", since.display()))?;
    let old = match open_checkpoint(&kept, key) {
        Ok(cp) => cp,
        Err(e) => return fail(format!("the kept checkpoint {}: {e}", since.display())),
    };
    let client = Client::new(&args.server)?;
    let note = client.get_text("/v1/checkpoint").map_err(|e| e.to_string())?;
    let new = match open_checkpoint(&note, key) {
        Ok(cp) => cp,
        Err(e) => return fail(format!("the server's checkpoint: {e}")),
    };
    if let Err(finding) = check_extension(&client, &old, &new)? {
        return fail(finding.to_string());
    }
    println!(
        "verified: the log of {} at size {} (root {}) extends the kept checkpoint at size {}",
        new.origin,
        new.size,
        to_base64(&new.root),
        old.size
    );
    if args.update {
        let tmp = since.with_extension("partial");
        std::fs::write(&tmp, &new.note)
            .and_then(|()| std::fs::rename(&tmp, since))
            .map_err(|e| format!("cannot update {}: {e}", since.display()))?;
        println!("kept the new checkpoint in {}", since.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn check_extension(
    client: &Client,
    old: &SignedCheckpoint,
    new: &SignedCheckpoint,
) -> Result<Result<(), Finding>, String> {
    let rewritten = |detail: String| Finding { seq: None, fault: Fault::RootMismatch, detail };
    if new.size < old.size {
        return Ok(Err(rewritten(format!(
            "the server's log has {} events, fewer than the {} of the kept checkpoint: history was removed",
            new.size, old.size
        ))));
    }
    if old.size == 0 {
        return Ok(Ok(()));
    }
    let answer = client
        .get_json(&format!("/v1/proofs/consistency?from={}&to={}", old.size, new.size))
        .map_err(|e| e.to_string())?;
    let proof: Option<Vec<Hash>> = answer
        .get("hashes")
        .and_then(Value::as_array)
        .map(|hashes| hashes.iter().map(|h| h.as_str().and_then(from_base64)).collect())
        .and_then(|v: Option<Vec<Hash>>| v);
    let Some(proof) = proof else {
        return Err("the server's consistency proof is malformed".into());
    };
    Ok(check_tree(&proof, new.size, new.root, old.size, old.root).map_err(|_| {
        rewritten(format!(
            "the server's log at size {} is not an extension of the kept checkpoint at size {}: history was rewritten",
            new.size, old.size
        ))
    }))
}
