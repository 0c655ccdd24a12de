//! `shiplog serve` configuration, layered: built-in defaults < config file <
//! environment (`SHIPLOG_*`) < command-line flags. clap resolves the last
//! two; this module lays them over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The config file's keys (all optional), e.g. `shiplog.toml`:
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// data_dir = "/var/lib/shiplog"
/// max_body_bytes = 1048576
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_webhook_body_bytes: Option<usize>,
    pub workers: Option<usize>,
    pub log_format: Option<String>,
    pub checkpoint_key: Option<PathBuf>,
    pub policies: Option<PathBuf>,
    pub entities: Option<PathBuf>,
    pub origin: Option<String>,
    pub access_policy: Option<PathBuf>,
    pub rate_limit: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub request_timeout_secs: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl FileConfig {
    /// Read the file named by `--config` (which must exist), or
    /// `./shiplog.toml` when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<FileConfig, String> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => {
                let default = PathBuf::from("shiplog.toml");
                if !default.exists() {
                    return Ok(FileConfig::default());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("the config file {} is invalid: {e}", path.display()))
    }
}

/// Where the ledger is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    /// A `postgres://` URL (it may hold a password: never log it as is).
    Postgres(String),
    /// An EventStoreDB / KurrentDB URL, `esdb://…` (the `eventstore` build
    /// feature serves it; it may hold a password too).
    Esdb(String),
    /// `log:DIR`: the EventStoreDB code path on JSON-lines files, one
    /// process; for tests and trials, not production.
    Log(PathBuf),
}

/// Without the password.
impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreUrl::Postgres(url) | StoreUrl::Esdb(url) => f.write_str(&shiplog_store::postgres::redact(url)),
            StoreUrl::Log(dir) => write!(f, "log:{}", dir.display()),
        }
    }
}

impl StoreUrl {
    /// `sqlite:PATH`, `sqlite://PATH`, or nothing (SQLite in the data dir).
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<StoreUrl, String> {
        let Some(url) = url else {
            return Ok(StoreUrl::Sqlite(data_dir.join("ledger.db")));
        };
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("--store sqlite: needs a file path, e.g. sqlite:///var/lib/shiplog/ledger.db".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(dir) = url.strip_prefix("log:") {
            if dir.is_empty() {
                return Err("--store log: needs a directory, e.g. log:shiplog-data/log".into());
            }
            return Ok(StoreUrl::Log(PathBuf::from(dir)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        if ["esdb://", "esdb+discover://", "kurrentdb://", "kurrentdb+discover://", "kurrent://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Ok(StoreUrl::Esdb(url.to_owned()));
        }
        Err(format!(
            "--store {:?} is not a store URL this shiplog knows; use sqlite:PATH, postgres://USER:PASSWORD@HOST:5432/DATABASE, \
             esdb://HOST:2113 (EventStoreDB / KurrentDB), or omit --store",
            shiplog_store::postgres::redact(url)
        ))
    }
}

pub fn parse_listen(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|_| {
        format!("--listen {addr:?} is not an address to listen on; give IP:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free port)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let dir = Path::new("/data");
        assert_eq!(StoreUrl::parse(None, dir), Ok(StoreUrl::Sqlite("/data/ledger.db".into())));
        assert_eq!(StoreUrl::parse(Some("sqlite:/x/l.db"), dir), Ok(StoreUrl::Sqlite("/x/l.db".into())));
        assert_eq!(StoreUrl::parse(Some("sqlite:///x/l.db"), dir), Ok(StoreUrl::Sqlite("/x/l.db".into())));
        assert!(StoreUrl::parse(Some("mysql://x"), dir).unwrap_err().contains("sqlite:PATH"));
        let pg = StoreUrl::parse(Some("postgres://app:s3cret@db:5432/ledger"), dir).unwrap();
        assert_eq!(pg, StoreUrl::Postgres("postgres://app:s3cret@db:5432/ledger".into()));
        assert_eq!(format!("{pg:?}"), "postgres://app:****@db:5432/ledger");
        let es = StoreUrl::parse(Some("esdb://admin:changeit@es:2113?tls=false"), dir).unwrap();
        assert_eq!(es, StoreUrl::Esdb("esdb://admin:changeit@es:2113?tls=false".into()));
        assert_eq!(format!("{es:?}"), "esdb://admin:****@es:2113?tls=false");
        assert!(matches!(StoreUrl::parse(Some("kurrentdb://es:2113"), dir), Ok(StoreUrl::Esdb(_))));
        assert_eq!(StoreUrl::parse(Some("log:/x/log"), dir), Ok(StoreUrl::Log("/x/log".into())));
        assert!(StoreUrl::parse(Some("log:"), dir).unwrap_err().contains("needs a directory"));
    }

    #[test]
    fn the_file_refuses_unknown_keys() {
        let err = toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\nlisten_addr = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }
}
