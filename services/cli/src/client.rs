//! Talking to a running server: the flags every such command shares, and
//! turning the server's `{error, message}` answers into messages for people.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The shiplog server
    #[arg(long, env = "SHIPLOG_SERVER", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub server: String,
    /// API token (sent as a bearer token)
    #[arg(long, env = "SHIPLOG_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for the server's answer
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Trust this CA (PEM) for an https:// server, instead of the public
    /// web's roots: for a server with a private CA's certificate
    #[arg(long, env = "SHIPLOG_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// A failed exchange with the server, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the shiplog server at {server}: {cause}; is it running? (set --server or SHIPLOG_SERVER)")]
    Unreachable { server: String, cause: String },
    #[error("the server refused the request ({status} {code}): {message}")]
    Refused { status: u16, code: String, message: String, body: Value },
    #[error("the server answered with something that is not JSON: {0}")]
    BadAnswer(String),
}

impl ClientError {
    /// Worth trying again with the same request: the server was not reached
    /// or was briefly unable to record.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Refused { status, .. } => *status == 503 || *status == 429,
            ClientError::BadAnswer(_) => false,
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server `args` name; an unreadable `--ca-cert` is an
    /// error that names it.
    pub fn new(args: &ServerArgs) -> Result<Client, String> {
        let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(args.timeout.max(1)));
        if let Some(ca) = &args.ca_cert {
            builder = builder.tls_config(std::sync::Arc::new(trusting(ca)?));
        }
        Ok(Client {
            agent: builder.build(),
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    /// GET a path; the body as text on success.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = answer(&self.base, req.call())?;
        resp.into_string().map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// GET a path as NDJSON; the body on success.
    pub fn get_ndjson(&self, path: &str) -> Result<String, ClientError> {
        let mut req = self.agent.get(&format!("{}{path}", self.base)).set("Accept", "application/x-ndjson");
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = answer(&self.base, req.call())?;
        resp.into_string().map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// GET a path; the JSON answer on success.
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let text = self.get_text(path)?;
        serde_json::from_str(&text).map_err(|_| ClientError::BadAnswer(snippet(&text)))
    }

    /// POST a JSON body; the status and the JSON answer on success.
    pub fn post_json(&self, path: &str, body: &str) -> Result<(u16, Value), ClientError> {
        let mut req = self.agent.post(&format!("{}{path}", self.base)).set("Content-Type", "application/json");
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = answer(&self.base, req.send_string(body))?;
        let status = resp.status();
        let text = resp.into_string().map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let value = serde_json::from_str(&text).map_err(|_| ClientError::BadAnswer(snippet(&text)))?;
        Ok((status, value))
    }
}

impl Client {
    /// DELETE a path; the JSON answer on success.
    pub fn delete_json(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.delete(&format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = answer(&self.base, req.call())?;
        let text = resp.into_string().map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        serde_json::from_str(&text).map_err(|_| ClientError::BadAnswer(snippet(&text)))
    }
}

/// A response on success; the server's `{error, message}` as an error.
fn answer(base: &str, result: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response, ClientError> {
    match result {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(status, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code = body.get("error").and_then(Value::as_str).unwrap_or("error").to_owned();
            let message = body.get("message").and_then(Value::as_str).map_or_else(|| snippet(&text), str::to_owned);
            Err(ClientError::Refused { status, code, message, body })
        }
        Err(ureq::Error::Transport(t)) => {
            Err(ClientError::Unreachable { server: base.to_owned(), cause: t.to_string() })
        }
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.is_empty() { "(empty body)".to_owned() } else { t }
}

/// A TLS client configuration that trusts the certificates in `ca` alone.
fn trusting(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| {
        format!("cannot read the CA certificate {}: {e}; check --ca-cert / SHIPLOG_CA_CERT", ca.display())
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{} is not valid PEM: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("{} holds an unusable certificate: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate (PEM, BEGIN CERTIFICATE); check --ca-cert", ca.display()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
