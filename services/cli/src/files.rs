//! Files the CLI writes whole or not at all: a copy goes to `FILE.partial`
//! and is renamed into place once complete; a SQLite file goes with the
//! `-wal` and `-shm` files SQLite keeps beside it.

use std::path::{Path, PathBuf};

/// `path` with `suffix` added to its file name (`ledger.db` → `ledger.db.partial`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Where a file is written before it is renamed into place.
pub fn partial(path: &Path) -> PathBuf {
    with_suffix(path, ".partial")
}

/// The `-wal` and `-shm` files beside a SQLite file.
pub fn sidecars(path: &Path) -> [PathBuf; 2] {
    [with_suffix(path, "-wal"), with_suffix(path, "-shm")]
}

/// Remove what SQLite keeps beside a database file.
pub fn remove_sidecars(path: &Path) {
    for p in sidecars(path) {
        let _ = std::fs::remove_file(p);
    }
}

/// Remove a SQLite file and what SQLite keeps beside it.
pub fn remove_db(path: &Path) {
    let _ = std::fs::remove_file(path);
    remove_sidecars(path);
}

/// Make a rename durable: sync the directory that holds `path`.
pub fn sync_dir(path: &Path) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
