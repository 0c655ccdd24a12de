//! `shiplog serve`: open the store, listen, serve until SIGTERM or Ctrl-C,
//! finish the requests in flight, close the store.

use std::io::{IsTerminal, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use shiplog_server::{Limits, ServerConfig};
use shiplog_store::{EventStore, SqliteStore};

use crate::config::{FileConfig, StoreUrl, parse_listen};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file (TOML); default ./shiplog.toml when it exists
    #[arg(long, env = "SHIPLOG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080; port 0 picks a free port]
    #[arg(long, env = "SHIPLOG_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the embedded store and keys [default: ./shiplog-data]
    #[arg(long, env = "SHIPLOG_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL [default: SQLite in the data directory; sqlite:PATH for another file]
    #[arg(long, env = "SHIPLOG_STORE", value_name = "URL")]
    store: Option<String>,
    /// Largest request body in bytes [default: 1048576]
    #[arg(long, env = "SHIPLOG_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Most events in one batch [default: 10000]
    #[arg(long, env = "SHIPLOG_MAX_BATCH", value_name = "N")]
    max_batch: Option<usize>,
    /// HTTP worker threads [default: one per core]
    #[arg(long, env = "SHIPLOG_WORKERS", value_name = "N")]
    workers: Option<usize>,
    /// Log format on stderr [default: text on a terminal, json otherwise]
    #[arg(long, env = "SHIPLOG_LOG_FORMAT", value_parser = ["json", "text"])]
    log_format: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let log_format = args.log_format.or(file.log_format);
    init_logging(log_format.as_deref())?;

    let listen = args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen = parse_listen(&listen)?;
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("shiplog-data"));
    let store_url = StoreUrl::parse(args.store.or(file.store).as_deref(), &data_dir)?;
    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
        max_batch: args.max_batch.or(file.max_batch).unwrap_or(defaults.max_batch),
    };
    if limits.max_body_bytes == 0 || limits.max_batch == 0 {
        return Err("--max-body-bytes and --max-batch must be at least 1".into());
    }
    let workers = args.workers.or(file.workers);
    if workers == Some(0) {
        return Err("--workers must be at least 1".into());
    }

    let store = match &store_url {
        StoreUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the data directory {}: {e}; choose another with --data-dir", dir.display())
                })?;
            }
            SqliteStore::open(path).map_err(|e| e.to_string())?
        }
    };
    let store: Arc<dyn EventStore> = Arc::new(store);

    let listener = TcpListener::bind(listen).map_err(|e| {
        format!("cannot listen on {listen}: {e}; choose another address with --listen (port 0 picks a free one)")
    })?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    tracing::info!(%addr, store = ?store_url, "shiplog listening");
    // One plain line on stdout, for people and for scripts that started the
    // server on port 0 and need to know where it is.
    println!("shiplog listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let config = ServerConfig { limits, workers, ..ServerConfig::default() };
    actix_web::rt::System::new().block_on(async move {
        let served =
            shiplog_server::serve(listener, Arc::clone(&store), config, shiplog_server::termination_signal()).await;
        store.close().await;
        tracing::info!("shiplog stopped");
        served.map_err(|e| format!("the server failed: {e}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SHIPLOG_LOG")
        .or_else(|_| EnvFilter::try_new("info"))
        .map_err(|e| format!("SHIPLOG_LOG is not a valid log filter: {e}"))?;
    let json = match format {
        Some("json") => true,
        Some(_) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
    result.map_err(|e| format!("cannot start logging: {e}"))
}
