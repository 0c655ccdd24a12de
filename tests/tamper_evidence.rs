//! The ledger is tamper-evident, end to end: exports verify offline, the
//! tree's root and proofs check with code independent of the server's, and
//! a history altered in the SQLite file is caught, at the right seq, by both
//! `shiplog verify` and the server's start-up check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::{BIN, Server, commit, deployment, event};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn shiplog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env("SHIPLOG_TOKEN", common::ADMIN_TOKEN).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn get_text(server: &Server, path: &str) -> String {
    Server::agent().get(&format!("{}{path}", server.url)).call().unwrap().into_string().unwrap()
}

/// A varied history of `n` events, appended in batches of up to 7.
fn record_history(server: &Server, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| match i % 3 {
            0 => deployment(&format!("svc-{}", i % 4)),
            1 => commit(&format!("{:07x}", i + 0xabc0000)),
            _ => event("flag.changed", json!({"flag": format!("f{i}"), "environment": "production", "from": i, "to": {"on": true, "ratio": 0.25}})),
        })
        .collect();
    for chunk in events.chunks(7) {
        let (status, body) = server.post("/v1/events", &json!(chunk));
        assert_eq!(status, 201, "{body}");
    }
}

// ---- An independent implementation of what an auditor checks ----------

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 6962 §2.1: MTH of a list of leaf hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = (n - 1).next_power_of_two() / if (n - 1).is_power_of_two() { 1 } else { 2 };
            let k = if k >= n { k / 2 } else { k };
            sha256(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

fn leaf_of(record: &Value) -> [u8; 32] {
    let mut record = record.clone();
    record.as_object_mut().unwrap().remove("leafHash");
    sha256(&[&[0], &serde_json_canonicalizer::to_vec(&record).unwrap()])
}

/// RFC 9162 §2.1.3.2: verify an inclusion proof.
fn verify_inclusion(leaf_index: u64, tree_size: u64, leaf: [u8; 32], proof: &[[u8; 32]], root: [u8; 32]) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fnode, mut snode) = (leaf_index, tree_size - 1);
    let mut r = leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = sha256(&[&[1], p, &r]);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = sha256(&[&[1], &r, p]);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == root
}

/// RFC 9162 §2.1.4.2: verify a consistency proof.
fn verify_consistency(
    first: u64,
    second: u64,
    first_root: [u8; 32],
    second_root: [u8; 32],
    proof: &[[u8; 32]],
) -> bool {
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 || first > second || proof.is_empty() {
        return false;
    }
    let mut path: Vec<[u8; 32]> = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_root);
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = sha256(&[&[1], c, &fr]);
            sr = sha256(&[&[1], c, &sr]);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = sha256(&[&[1], &sr, c]);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == first_root && sr == second_root && snode == 0
}

/// C2SP signed-note: check the Ed25519 signature of a checkpoint with a
/// verifier key `<name>+<hex id>+<base64(0x01 || key)>`; its (size, root).
fn open_note(note: &str, vkey: &str) -> Option<(u64, [u8; 32])> {
    let parts: Vec<&str> = vkey.trim().splitn(3, '+').collect();
    let (name, id) = (parts[0], u32::from_str_radix(parts[1], 16).ok()?);
    let key = B64.decode(parts[2]).ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(key.get(1..)?.try_into().ok()?).ok()?;
    let (text, sigs) = note.split_once("\n\n")?;
    let text = format!("{text}\n");
    let sig_line = sigs.lines().find(|l| l.starts_with(&format!("\u{2014} {name} ")))?;
    let sig = B64.decode(sig_line.rsplit(' ').next()?).ok()?;
    if u32::from_be_bytes(sig.get(..4)?.try_into().ok()?) != id {
        return None;
    }
    let sig = ed25519_dalek::Signature::from_slice(sig.get(4..)?).ok()?;
    key.verify_strict(text.as_bytes(), &sig).ok()?;
    let mut lines = text.lines();
    (lines.next()? == name).then_some(())?;
    let size = lines.next()?.parse().ok()?;
    let root = B64.decode(lines.next()?).ok()?.try_into().ok()?;
    Some((size, root))
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

// ---- The tests ----------------------------------------------------------

#[test]
fn an_export_verifies_offline_and_its_root_recomputes_independently() {
    let server = Server::start();
    // 37 in all, with the server's own first events.
    record_history(&server, 37 - server.base as usize);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shiplog.pub");
    std::fs::write(&key, get_text(&server, "/v1/checkpoint/key")).unwrap();
    let export = dir.path().join("ledger.ndjson");

    let (code, _, err) = shiplog(&["export", "--server", &server.url, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 37 events"), "{err}");

    // Independently of shiplog's tree code: every leaf, the root, the signature.
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (records, checkpoint) = lines.split_at(lines.len() - 1);
    let mut leaves = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], seq as u64);
        let leaf = leaf_of(record);
        assert_eq!(record["leafHash"].as_str().unwrap(), hex::encode(leaf), "seq {seq}");
        leaves.push(leaf);
    }
    let note = checkpoint[0]["checkpoint"].as_str().unwrap();
    let (size, root) =
        open_note(note, &std::fs::read_to_string(&key).unwrap()).expect("the checkpoint's signature checks");
    assert_eq!(size, 37);
    assert_eq!(root, mth(&leaves), "the checkpoint's root is the records' RFC 6962 root");

    let (code, out, err) = shiplog(&["verify", export.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: 37 events"), "{out}");

    // A key of another log with the same name does not verify it.
    let (_, other) = shiplog_core::checkpoint::keys_from_seed("shiplog.local/ledger", [3; 32]).unwrap();
    let other_key = dir.path().join("other.pub");
    std::fs::write(&other_key, other).unwrap();
    let (code, _, err) = shiplog(&["verify", export.to_str().unwrap(), "--key", other_key.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("NOT VERIFIED") && err.contains("signature"), "{err}");

    // An altered checkpoint body does not verify either.
    let forged = text.replacen("\\n37\\n", "\\n36\\n", 1);
    assert_ne!(forged, text);
    let forged_path = dir.path().join("forged.ndjson");
    std::fs::write(&forged_path, forged).unwrap();
    let (code, _, err) = shiplog(&["verify", forged_path.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signature"), "{err}");
}

/// Given an export, when its lines are altered so, then verify names this
/// seq and fault.
#[test]
fn verify_names_the_first_bad_seq_of_an_altered_export() {
    let server = Server::start();
    record_history(&server, 12);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shiplog.pub");
    std::fs::write(&key, get_text(&server, "/v1/checkpoint/key")).unwrap();
    let export = dir.path().join("ledger.ndjson");
    assert_eq!(shiplog(&["export", "--server", &server.url, "--out", export.to_str().unwrap()]).0, 0);
    let good: Vec<String> = std::fs::read_to_string(&export).unwrap().lines().map(str::to_owned).collect();

    type Alter = fn(&mut Vec<String>);
    let cases: Vec<(&str, Alter, &str)> = vec![
        ("an actor rewritten", |l| l[4] = l[4].replacen("u-1042", "u-9999", 1), "seq 4: modified"),
        (
            "a line deleted",
            |l| {
                l.remove(6);
            },
            "seq 6: missing",
        ),
        ("two lines swapped", |l| l.swap(3, 8), "seq 3: reordered"),
        (
            "a line repeated",
            |l| {
                let r = l[9].clone();
                l.insert(10, r);
            },
            "seq 9: extra",
        ),
    ];
    for (name, alter, says) in cases {
        let mut lines = good.clone();
        alter(&mut lines);
        let path = dir.path().join("altered.ndjson");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let (code, _, err) = shiplog(&["verify", path.to_str().unwrap(), "--key", key.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: expected {says:?} in {err}");
    }
}

#[test]
fn proofs_check_against_signed_checkpoints() {
    let server = Server::start();
    let vkey = get_text(&server, "/v1/checkpoint/key");
    record_history(&server, 10 - server.base as usize);
    let first_note = get_text(&server, "/v1/checkpoint");
    let (first_size, first_root) = open_note(&first_note, &vkey).unwrap();
    assert_eq!(first_size, 10);
    record_history(&server, 27);
    let note = get_text(&server, "/v1/checkpoint");
    let (size, root) = open_note(&note, &vkey).unwrap();
    assert_eq!(size, 37);

    let events = server.all_events();
    for seq in [0u64, 1, 17, 31, 36] {
        let (status, proof) = server.get(&format!("/v1/proofs/inclusion?seq={seq}&treeSize={size}"));
        assert_eq!(status, 200, "{proof}");
        assert_eq!(proof["leafIndex"], seq);
        let leaf = leaf_of(&events[seq as usize]);
        assert_eq!(proof["leafHash"].as_str().unwrap(), hex::encode(leaf));
        assert!(verify_inclusion(seq, size, leaf, &hashes(&proof), root), "inclusion of seq {seq}");
        assert!(!verify_inclusion(seq, size, sha256(&[b"forged"]), &hashes(&proof), root));
    }
    let (status, proof) = server.get(&format!("/v1/proofs/consistency?from={first_size}&to={size}"));
    assert_eq!(status, 200, "{proof}");
    assert!(verify_consistency(first_size, size, first_root, root, &hashes(&proof)));
    assert!(!verify_consistency(first_size, size, sha256(&[b"rewritten"]), root, &hashes(&proof)));

    for (path, field) in [
        ("/v1/proofs/inclusion?seq=37&treeSize=37", "seq"),
        ("/v1/proofs/inclusion?seq=1&treeSize=99", "treeSize"),
        ("/v1/proofs/inclusion", "seq"),
        ("/v1/proofs/consistency?from=0&to=5", "from"),
        ("/v1/proofs/consistency?from=9&to=5", "from"),
        ("/v1/proofs/consistency?from=1&to=99", "to"),
    ] {
        let (status, err) = server.get(path);
        assert_eq!((status, err["field"].as_str()), (400, Some(field)), "{path}: {err}");
    }

    // An auditor who kept the first checkpoint proves the log only grew.
    let dir = tempfile::tempdir().unwrap();
    let (kept, key) = (dir.path().join("kept.checkpoint"), dir.path().join("shiplog.pub"));
    std::fs::write(&kept, &first_note).unwrap();
    std::fs::write(&key, &vkey).unwrap();
    let args = [
        "verify",
        "--server",
        &server.url,
        "--since",
        kept.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--update",
    ];
    let (code, out, err) = shiplog(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("at size 37") && out.contains("checkpoint at size 10"), "{out}");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), note, "--update keeps the newer checkpoint");

    // A kept checkpoint of another history is not extended by this log.
    let (skey, other_vkey) = shiplog_core::checkpoint::keys_from_seed("x.test/log", [5; 32]).unwrap();
    let signer = shiplog_core::checkpoint::CheckpointSigner::new(&skey, &other_vkey).unwrap();
    let _ = signer;
    let forged = first_note.replacen(&B64.encode(first_root), &B64.encode(sha256(&[b"other"])), 1);
    std::fs::write(&kept, forged).unwrap();
    let (code, _, err) = shiplog(&args);
    assert_eq!(code, 1, "{err}");
}

fn stop(mut server: Server) {
    server.signal(libc::SIGTERM);
    assert!(server.wait(30).success());
}

fn sql(data_dir: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(data_dir.join("ledger.db")).unwrap();
    conn.execute_batch(statements).unwrap();
}

/// Given a ledger of 20 events with a signed checkpoint, when its SQLite
/// file is altered so, then the start-up check and `shiplog verify` both
/// name this seq and fault, appends are refused and reads still served.
#[test]
fn tampering_with_the_sqlite_file_is_caught_at_the_right_seq() {
    type Tamper = fn(&Path, &[Value]);
    let cases: Vec<(&str, Tamper, Option<u64>, &str)> = vec![
        (
            "one event's data edited",
            |dir, _| sql(dir, "UPDATE events SET data = json_set(data, '$.from', 999) WHERE seq = 8;"),
            Some(8),
            "modified",
        ),
        ("a row deleted", |dir, _| sql(dir, "DELETE FROM events WHERE seq = 12;"), Some(12), "missing"),
        (
            "two rows swapped",
            |dir, _| {
                sql(
                    dir,
                    "UPDATE events SET seq = -1 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 9; UPDATE events SET seq = 9 WHERE seq = -1;",
                )
            },
            Some(3),
            "reordered",
        ),
        (
            "data and leaf hash rewritten together",
            |dir, events| {
                let mut record = events[5].clone();
                record["data"]["flag"] = json!("rewritten");
                let leaf = leaf_of(&record);
                let data = record["data"].to_string().replace('\'', "''");
                sql(
                    dir,
                    &format!("UPDATE events SET data = '{data}', leaf_hash = x'{}' WHERE seq = 5;", hex::encode(leaf)),
                );
            },
            None,
            "root mismatch",
        ),
    ];
    for (name, tamper, seq, fault) in cases {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_in(dir.path(), &[]);
        record_history(&server, 20);
        let note = get_text(&server, "/v1/checkpoint");
        let key = dir.path().join("shiplog.pub");
        std::fs::write(&key, get_text(&server, "/v1/checkpoint/key")).unwrap();
        let events = server.all_events();
        stop(server);

        tamper(dir.path(), &events);

        // With the release gates on: a read-only ledger records no activation.
        let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let server = Server::start_in(dir.path(), &["--policies", policies.to_str().unwrap()]);
        let (status, ready) = server.get("/readyz");
        assert_eq!(status, 503, "{name}: {ready}");
        assert_eq!(ready["error"], "integrity_failure", "{name}: {ready}");
        assert_eq!(ready["fault"], fault, "{name}: {ready}");
        assert_eq!(ready["seq"].as_u64(), seq, "{name}: {ready}");
        assert!(server.log().contains("THE STORED HISTORY WAS ALTERED"), "{name}");

        let (status, refused) = server.post("/v1/events", &deployment("after-tamper"));
        assert_eq!((status, refused["error"].as_str()), (503, Some("integrity_failure")), "{name}: {refused}");
        assert_eq!(server.get("/v1/events").0, 200, "{name}: reads are still served");
        assert_eq!(get_text(&server, "/v1/checkpoint"), note, "{name}: nothing new is signed");
        let activations = |events: &[Value]| events.iter().filter(|e| e["type"] == "policy.activated").count();
        assert_eq!(activations(&server.all_events()), activations(&events), "{name}: nothing new is recorded");
        let (status, _) = server.post("/v1/policies/reload", &json!({}));
        assert_eq!(status, 503, "{name}: no reload while read-only");

        let export = dir.path().join("ledger.ndjson");
        let (code, _, err) = shiplog(&["export", "--server", &server.url, "--out", export.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {err}");
        let (code, _, err) = shiplog(&["verify", export.to_str().unwrap(), "--key", key.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        let says = match seq {
            Some(seq) => format!("seq {seq}: {fault}"),
            None => fault.to_owned(),
        };
        assert!(err.contains(&says), "{name}: expected {says:?} in {err}");
    }
}

#[test]
fn a_ledger_whose_signing_key_is_lost_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    record_history(&server, 3);
    let _ = get_text(&server, "/v1/checkpoint");
    stop(server);
    std::fs::rename(dir.path().join("checkpoint.key"), dir.path().join("elsewhere.key")).unwrap();

    let out =
        Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint.key is missing") && err.contains("--checkpoint-key"), "{err}");
    assert!(!dir.path().join("checkpoint.key").exists(), "no new key replaces the lost one");

    let server =
        Server::start_in(dir.path(), &["--checkpoint-key", dir.path().join("elsewhere.key").to_str().unwrap()]);
    assert_eq!(server.get("/readyz").0, 200);
}
