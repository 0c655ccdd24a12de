//! `shiplog serve`: open the store, listen, serve until SIGTERM or Ctrl-C,
//! finish the requests in flight, close the store.

use std::io::{IsTerminal, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use shiplog_core::checkpoint::{CheckpointSigner, keys_from_seed};
use shiplog_server::{Ledger, Limits, PolicyConfig, ServerConfig};
use shiplog_store::{EventStore, PostgresStore, SqliteStore};

use crate::config::{FileConfig, StoreUrl, parse_listen};

/// `shiplog serve`'s flags. Not `Debug`: they hold the webhook secrets.
#[derive(Args)]
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
    /// Store URL [default: SQLite in the data directory; sqlite:PATH for another file;
    /// postgres://USER:PASSWORD@HOST:5432/DB; esdb://HOST:2113 with the eventstore build feature;
    /// log:DIR runs the EventStoreDB code path on local files, one process, for tests and trials]
    #[arg(long, env = "SHIPLOG_STORE", value_name = "URL")]
    store: Option<String>,
    /// Directory of Cedar gate policies (*.cedar, shadow/*.cedar, tests/)
    /// [default: ./policies; without it, decisions are unavailable]
    #[arg(long, env = "SHIPLOG_POLICIES", value_name = "DIR")]
    policies: Option<PathBuf>,
    /// The directory of people, teams, services and environments
    /// (Cedar entities JSON) [default: DIR/entities.json]
    #[arg(long, env = "SHIPLOG_ENTITIES", value_name = "PATH")]
    entities: Option<PathBuf>,
    /// Largest request body in bytes [default: 1048576]
    #[arg(long, env = "SHIPLOG_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest webhook body in bytes (GitHub sends up to 25 MB) [default: 26214400]
    #[arg(long, env = "SHIPLOG_MAX_WEBHOOK_BODY_BYTES", value_name = "BYTES")]
    max_webhook_body_bytes: Option<usize>,
    /// Most events in one batch [default: 10000]
    #[arg(long, env = "SHIPLOG_MAX_BATCH", value_name = "N")]
    max_batch: Option<usize>,
    /// HTTP worker threads [default: one per core]
    #[arg(long, env = "SHIPLOG_WORKERS", value_name = "N")]
    workers: Option<usize>,
    /// The checkpoint signing key (signed-note form); created on first start
    /// when absent [default: checkpoint.key in the data directory]
    #[arg(long, env = "SHIPLOG_CHECKPOINT_KEY", value_name = "FILE")]
    checkpoint_key: Option<PathBuf>,
    /// The log's name, first line of every checkpoint, used when a new key is
    /// created [default: shiplog.local/ledger]
    #[arg(long, env = "SHIPLOG_ORIGIN", value_name = "NAME")]
    origin: Option<String>,
    /// GitHub's webhook secret: enables POST /v1/webhooks/github, whose
    /// deliveries must be signed with it (X-Hub-Signature-256). Prefer the
    /// environment variable: a flag's value shows in the process list
    #[arg(long, env = "SHIPLOG_GITHUB_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    github_webhook_secret: Option<String>,
    /// GitLab's webhook secret token: enables POST /v1/webhooks/gitlab,
    /// whose hooks must send it (X-Gitlab-Token)
    #[arg(long, env = "SHIPLOG_GITLAB_WEBHOOK_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    gitlab_webhook_token: Option<String>,
    /// An OpenTelemetry collector (OTLP/HTTP, http://host:4318): a span per
    /// request is sent to {URL}/v1/traces [default: no export]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The service name on exported spans
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME", default_value = "shiplog")]
    otel_service_name: String,
    /// The first admin token (at least 32 characters, e.g. `openssl rand
    /// -base64 32`), recorded hashed as the token named admin; a new value
    /// revokes the old. Without it, a server with no admin token makes one
    /// and prints it once. Prefer the environment variable
    #[arg(long, env = "SHIPLOG_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The API access policy (Cedar, validated against
    /// schema/access.cedarschema) [default: the built-in
    /// policies/access/api.cedar]
    #[arg(long, env = "SHIPLOG_ACCESS_POLICY", value_name = "FILE")]
    access_policy: Option<PathBuf>,
    /// Requests per second each API token may make; 0 turns the limit off
    /// [default: 500]
    #[arg(long, env = "SHIPLOG_RATE_LIMIT", value_name = "N")]
    rate_limit: Option<u32>,
    /// Requests a token may make at once above its rate [default: twice the rate]
    #[arg(long, env = "SHIPLOG_RATE_LIMIT_BURST", value_name = "N")]
    rate_limit_burst: Option<u32>,
    /// Seconds a request may take before it is abandoned with 503 [default: 30]
    #[arg(long, env = "SHIPLOG_REQUEST_TIMEOUT", value_name = "SECONDS")]
    request_timeout: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key
    #[arg(long, env = "SHIPLOG_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "SHIPLOG_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
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
        max_webhook_body_bytes: args
            .max_webhook_body_bytes
            .or(file.max_webhook_body_bytes)
            .unwrap_or(defaults.max_webhook_body_bytes),
    };
    if limits.max_body_bytes == 0 || limits.max_batch == 0 || limits.max_webhook_body_bytes == 0 {
        return Err("--max-body-bytes, --max-batch and --max-webhook-body-bytes must be at least 1".into());
    }
    let workers = args.workers.or(file.workers);
    if workers == Some(0) {
        return Err("--workers must be at least 1".into());
    }

    let explicit_policies = args.policies.or(file.policies);
    let entities = args.entities.or(file.entities);
    let policies = match explicit_policies {
        Some(dir) => Some(PolicyConfig { dir, entities }),
        None if Path::new("policies").is_dir() => Some(PolicyConfig { dir: PathBuf::from("policies"), entities }),
        None => {
            tracing::warn!(
                "no ./policies directory: release gates are off (POST /v1/decisions answers 503); give --policies DIR"
            );
            None
        }
    };
    let key_path = args.checkpoint_key.or(file.checkpoint_key);
    let origin = args.origin.or(file.origin).unwrap_or_else(|| "shiplog.local/ledger".to_owned());
    if let StoreUrl::Sqlite(path) = &store_url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("cannot create the data directory {}: {e}; choose another with --data-dir", dir.display())
            })?;
        }
    }

    let listener = TcpListener::bind(listen).map_err(|e| {
        format!("cannot listen on {listen}: {e}; choose another address with --listen (port 0 picks a free one)")
    })?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    let webhooks = shiplog_server::Webhooks {
        github_secret: args.github_webhook_secret.filter(|s| !s.is_empty()),
        gitlab_token: args.gitlab_webhook_token.filter(|s| !s.is_empty()),
    };
    for (name, on) in [("GitHub", webhooks.github_secret.is_some()), ("GitLab", webhooks.gitlab_token.is_some())] {
        if on {
            tracing::info!("{name} webhooks enabled");
        } else {
            tracing::info!("{name} webhooks disabled: no secret configured");
        }
    }
    let otlp = args
        .otlp_endpoint
        .filter(|e| !e.is_empty())
        .map(|endpoint| shiplog_server::otlp::OtlpConfig { endpoint, service_name: args.otel_service_name.clone() });
    // OTEL_EXPORTER_OTLP_ENDPOINT may be set for every process in a
    // cluster, for another protocol: a value shiplog cannot use turns export
    // off with a warning rather than stopping the server.
    let otlp = otlp.filter(|o| {
        let usable = o.endpoint.starts_with("http://");
        if !usable {
            tracing::warn!(
                endpoint = %o.endpoint,
                "traces are not exported: shiplog sends OTLP/HTTP to an http:// collector (port 4318); https is not supported"
            );
        }
        usable
    });
    let auth = auth_config(
        args.admin_token.filter(|t| !t.is_empty()),
        args.access_policy.or(file.access_policy),
        args.rate_limit.or(file.rate_limit),
        args.rate_limit_burst.or(file.rate_limit_burst),
        args.request_timeout.or(file.request_timeout_secs),
    )?;
    let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some(shiplog_server::tls::server_config(&cert, &key)?),
        (None, None) => None,
        _ => return Err("HTTPS needs both a certificate and its key: give --tls-cert and --tls-key".into()),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = ServerConfig { limits, workers, webhooks, otlp, auth, tls, ..ServerConfig::default() };
    actix_web::rt::System::new().block_on(async move {
        let store = open_store(&store_url).await?;
        let signed_before = match store.latest_checkpoint().await {
            Ok(cp) => cp.map(|cp| cp.size),
            Err(e) => {
                store.close().await;
                return Err(format!("cannot read the ledger: {e}"));
            }
        };
        let signer = match load_or_create_key(key_path.as_deref(), &data_dir, &origin, signed_before) {
            Ok(signer) => signer,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let mut ledger = match Ledger::open(Arc::clone(&store), signer).await {
            Ok(ledger) => ledger,
            Err(e) => {
                store.close().await;
                return Err(format!("cannot open the ledger: {e}"));
            }
        };
        if let Some(config) = policies {
            if let Err(e) = ledger.start_gates(config).await {
                store.close().await;
                return Err(format!("the release gates cannot start: {e}"));
            }
        }
        let opened = match shiplog_server::auth::Auth::open(&ledger, config.auth.clone()).await {
            Ok(opened) => opened,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        if let Some(secret) = &opened.generated_admin_token {
            // Straight to the terminal, never through the log: shown once.
            eprintln!(
                "\nshiplog: no admin token existed, so one was made. It is shown this once; keep it as a secret:\n\n    {secret}\n\nUse it as SHIPLOG_TOKEN to make tokens for pipelines and auditors: shiplog token create --role pipeline --name ci-main\n"
            );
        }
        tracing::info!(%addr, store = ?store_url, "shiplog listening");
        // One plain line on stdout, for people and for scripts that started
        // the server on port 0 and need to know where it is.
        println!("shiplog listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
        let served =
            shiplog_server::serve(listener, ledger, opened.auth, config, shiplog_server::termination_signal()).await;
        store.close().await;
        tracing::info!("shiplog stopped");
        served.map_err(|e| format!("the server failed: {e}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Open the store a URL names: the embedded SQLite file, or PostgreSQL
/// (whose connections then live on the runtime that opened them).
pub async fn open_store(url: &StoreUrl) -> Result<Arc<dyn EventStore>, String> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path).map_err(|e| e.to_string())?),
        StoreUrl::Postgres(url) => Arc::new(PostgresStore::open(url).await.map_err(|e| {
            format!("{e}; check --store (postgres://USER:PASSWORD@HOST:5432/DATABASE) and that PostgreSQL is running")
        })?),
        StoreUrl::Esdb(url) => open_esdb(url).await?,
        StoreUrl::Log(dir) => {
            let log = shiplog_store::FileLog::open(dir).map_err(|e| e.to_string())?;
            Arc::new(shiplog_store::LogStore::open(log).await.map_err(|e| e.to_string())?)
        }
    })
}

#[cfg(feature = "eventstore")]
async fn open_esdb(url: &str) -> Result<Arc<dyn EventStore>, String> {
    let store = shiplog_store::esdb::open(url).await.map_err(|e| {
        format!(
            "{e}; check --store (esdb://USER:PASSWORD@HOST:2113, ?tls=false for an insecure server) and that EventStoreDB / KurrentDB is running"
        )
    })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "eventstore"))]
async fn open_esdb(url: &str) -> Result<Arc<dyn EventStore>, String> {
    Err(format!(
        "--store {}: this shiplog was built without the EventStoreDB / KurrentDB backend; build it with \
         `cargo build --release --features eventstore` (or use sqlite: or postgres://)",
        shiplog_store::postgres::redact(url)
    ))
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

/// The checkpoint signing key: read from `explicit` (which must exist), or
/// from the data directory, where it is created (mode 0600) on first start,
/// unless the ledger already has checkpoints: a new key could not sign a
/// successor to them that anyone could check.
fn load_or_create_key(
    explicit: Option<&Path>,
    data_dir: &Path,
    origin: &str,
    signed_before: Option<u64>,
) -> Result<CheckpointSigner, String> {
    let path = explicit.map_or_else(|| data_dir.join("checkpoint.key"), Path::to_owned);
    match std::fs::read_to_string(&path) {
        Ok(text) => CheckpointSigner::from_signer_key(&text)
            .map_err(|e| format!("the checkpoint key {} is unusable: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() && signed_before.is_some() => {
            Err(format!(
                "{} is missing, but this ledger has checkpoints (up to size {}) signed with it; restore the key, or point --checkpoint-key at it",
                path.display(),
                signed_before.unwrap_or(0)
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| format!("no randomness to make a checkpoint key: {e}"))?;
            let (signer_key, verifier_key) = keys_from_seed(origin, seed).map_err(|e| format!("--origin: {e}"))?;
            std::fs::create_dir_all(data_dir).map_err(|e| {
                format!("cannot create the data directory {}: {e}; choose another with --data-dir", data_dir.display())
            })?;
            write_secret(&path, &format!("{signer_key}\n"))?;
            let public = path.with_extension("pub");
            std::fs::write(&public, format!("{verifier_key}\n"))
                .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
            tracing::info!(path = %path.display(), verifier_key = %verifier_key, "created the checkpoint signing key");
            CheckpointSigner::new(&signer_key, &verifier_key).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot read the checkpoint key {}: {e}", path.display())),
    }
}

fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Tokens, access policy, rate limit and timeout from flags and file. The
/// bootstrap admin token is never read from the config file.
fn auth_config(
    admin_token: Option<String>,
    access_policy: Option<PathBuf>,
    rate_limit: Option<u32>,
    burst: Option<u32>,
    request_timeout: Option<u64>,
) -> Result<shiplog_server::AuthConfig, String> {
    let defaults = shiplog_server::AuthConfig::default();
    let access_policy = match access_policy {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the access policy {}: {e}; check --access-policy", path.display()))?;
            Some(vec![shiplog_policy::SourceFile { name: path.display().to_string(), text }])
        }
    };
    let per_second = rate_limit.unwrap_or(defaults.rate_limit.per_second);
    let burst = burst.unwrap_or_else(|| per_second.saturating_mul(2));
    if per_second > 0 && burst == 0 {
        return Err("--rate-limit-burst must be at least 1 while a rate limit is on".into());
    }
    let request_timeout = request_timeout.unwrap_or(defaults.request_timeout.as_secs());
    if request_timeout == 0 {
        return Err("--request-timeout must be at least 1 second".into());
    }
    Ok(shiplog_server::AuthConfig {
        admin_token,
        access_policy,
        rate_limit: shiplog_server::RateLimit { per_second, burst },
        request_timeout: std::time::Duration::from_secs(request_timeout),
    })
}
