//! `shiplog token create|list|revoke`: API tokens, through the admin API
//! (an admin token in SHIPLOG_TOKEN). A new token's secret is printed once,
//! on stdout alone, so that `$(shiplog token create …)` captures just it.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, ClientError, ServerArgs};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make a token; its secret is printed once, on stdout
    Create {
        /// What the token may do: pipeline (record, decide, read), auditor
        /// (read, export, proofs) or admin (everything)
        #[arg(long, value_parser = ["pipeline", "auditor", "admin"])]
        role: String,
        /// Its name, unique among live tokens: it becomes the recordedBy of
        /// every event the token records (for example ci-main)
        #[arg(long)]
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List every token (live and revoked), never their secrets
    List {
        /// Print the server's JSON answer
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke the live token of this name; it is refused from then on
    Revoke {
        /// The token's name
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn refused(e: ClientError) -> String {
    match &e {
        ClientError::Refused { status: 401, .. } => {
            format!(
                "{e}\nset SHIPLOG_TOKEN to an admin token (the first one is SHIPLOG_ADMIN_TOKEN, or was printed when the server first started)"
            )
        }
        ClientError::Refused { status: 403, .. } => {
            format!("{e}\nmanaging tokens needs an admin token in SHIPLOG_TOKEN")
        }
        _ => e.to_string(),
    }
}

pub fn run(args: TokenArgs) -> Result<ExitCode, String> {
    match args.command {
        TokenCommand::Create { role, name, server } => {
            let client = Client::new(&server)?;
            let body = json!({"name": name, "role": role}).to_string();
            let (_, answer) = client.post_json("/v1/tokens", &body).map_err(refused)?;
            let secret = answer["token"].as_str().ok_or("the server's answer has no token")?;
            println!("{secret}");
            eprintln!(
                "created the {role} token {name:?} (ledger seq {}); the secret above is shown this once: store it as a secret, for example SHIPLOG_TOKEN in your CI",
                answer["seq"]
            );
        }
        TokenCommand::List { json, server } => {
            let client = Client::new(&server)?;
            let answer = client.get_json("/v1/tokens").map_err(refused)?;
            if json {
                println!("{answer:#}");
                return Ok(ExitCode::SUCCESS);
            }
            let tokens = answer["tokens"].as_array().cloned().unwrap_or_default();
            println!("{:<24} {:<9} {:<21} {:<16} STATUS", "NAME", "ROLE", "CREATED", "BY");
            for t in &tokens {
                let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
                let status = match t["revokedAt"].as_str() {
                    Some(at) => format!("revoked {at} by {}", s(&t["revokedBy"])),
                    None => "live".to_owned(),
                };
                println!(
                    "{:<24} {:<9} {:<21} {:<16} {status}",
                    s(&t["name"]),
                    s(&t["role"]),
                    s(&t["createdAt"]),
                    s(&t["createdBy"])
                );
            }
        }
        TokenCommand::Revoke { name, server } => {
            let client = Client::new(&server)?;
            let path = format!("/v1/tokens/{}", percent_encode(&name));
            let answer = client.delete_json(&path).map_err(refused)?;
            println!("revoked the {} token {name:?} (ledger seq {})", s_or(&answer["role"]), answer["seq"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn s_or(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// Token names are letters, digits, `-`, `_` and `.`; anything else is
/// escaped so that the server answers with its own error about the name.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
