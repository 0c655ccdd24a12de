//! The JSON Schemas under `schema/events/` are generated from the Rust
//! types. This test fails when they drift; to refresh them after changing an
//! event type, run `SHIPLOG_UPDATE_SCHEMAS=1 cargo test -p shiplog-core --test schema_drift`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn event_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/events");
    let update = std::env::var_os("SHIPLOG_UPDATE_SCHEMAS").is_some();
    let expected = shiplog_core::schema::event_schemas();
    let mut stale = Vec::new();
    for (name, content) in &expected {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            stale.push(name.clone());
        }
    }
    let known: Vec<String> = expected.into_iter().map(|(n, _)| n).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !known.contains(&name) {
            if update {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (no longer generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schema/events/ is out of date for: {}\nrun: SHIPLOG_UPDATE_SCHEMAS=1 cargo test -p shiplog-core --test schema_drift",
        stale.join(", ")
    );
}
