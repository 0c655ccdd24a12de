use uuid::Uuid;

/// Why a batch was not appended. Nothing of the batch was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("event {id} (batch index {index}) was already recorded with other content; an event id can be used once")]
    IdConflict { index: usize, id: Uuid },
    #[error(
        "event {id} appears twice in the batch (indexes {first} and {index}) with different content; an event id can be used once"
    )]
    IdRepeated { index: usize, first: usize, id: Uuid },
    #[error("stream {stream:?} is at version {}, but event {id} (batch index {index}) expected {}", fmt_version(*current), fmt_expected(*expected))]
    VersionConflict { index: usize, id: Uuid, stream: String, expected: i64, current: Option<u64> },
    #[error("the store is not taking appends: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Storage(String),
}

fn fmt_version(v: Option<u64>) -> String {
    match v {
        None => "-1 (it does not exist)".to_owned(),
        Some(v) => v.to_string(),
    }
}

fn fmt_expected(v: i64) -> String {
    if v == -1 { "-1 (no stream yet)".to_owned() } else { v.to_string() }
}

/// Why a read or a health check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Storage(String),
    #[error("the stored event at seq {seq} cannot be read: {problem}")]
    Corrupt { seq: u64, problem: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

impl From<rusqlite::Error> for AppendError {
    fn from(e: rusqlite::Error) -> Self {
        AppendError::Storage(e.to_string())
    }
}
