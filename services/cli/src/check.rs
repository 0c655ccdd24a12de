//! `shiplog check`: ask the release gates whether a step may proceed.
//! Exit status 0: allowed; 2: denied; 1: the question could not be asked.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value, json};

use crate::client::{Client, ClientError, ServerArgs};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  shiplog check --principal cd-production --action deploy --service checkout --env production --artifact sha256:ab12
  shiplog check --principal u-1005 --action deploy --service checkout --env production --artifact sha256:ab12 \\
      --emergency --rollback-plan https://wiki.example.com/rollback/checkout
  shiplog check --principal u-1001 --action merge --repo shop/web --number 42 --sha a1b2c3d --format github

Exit status: 0 allowed, 2 denied (the reasons say what is missing), 1 error.")]
pub struct CheckArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Who asks: a person or pipeline of the directory
    #[arg(long)]
    principal: String,
    /// deploy, rollback, merge, apply-infra, promote-canary or apply-migration
    #[arg(long)]
    action: String,
    #[arg(long)]
    service: Option<String>,
    #[arg(long = "env", alias = "environment")]
    environment: Option<String>,
    /// The artifact (digest or purl)
    #[arg(long)]
    artifact: Option<String>,
    /// The deployment, for promote-canary
    #[arg(long)]
    deployment_id: Option<String>,
    /// The repository and change number, and the commit, for merge
    #[arg(long)]
    repo: Option<String>,
    #[arg(long)]
    number: Option<u64>,
    #[arg(long)]
    sha: Option<String>,
    /// The infrastructure change, for apply-infra
    #[arg(long)]
    change_id: Option<String>,
    /// The migration and its phase (expand or contract), for apply-migration
    #[arg(long)]
    migration: Option<String>,
    #[arg(long)]
    phase: Option<String>,
    /// This deployment bypasses staging or the maintenance window
    #[arg(long)]
    emergency: bool,
    /// Link to the rollback plan (required for an emergency)
    #[arg(long, value_name = "URL")]
    rollback_plan: Option<String>,
    /// For promote-canary when no analysis is recorded: the error rate, a
    /// fraction (0.01 is 1%)
    #[arg(long, requires = "canary_p95_ms")]
    canary_error_rate: Option<f64>,
    /// For promote-canary when no analysis is recorded: p95 latency in ms
    #[arg(long, requires = "canary_error_rate")]
    canary_p95_ms: Option<f64>,
    /// How to print the answer
    #[arg(long, default_value = "text", value_parser = ["text", "json", "github"])]
    format: String,
}

pub fn run(args: CheckArgs) -> Result<ExitCode, String> {
    let mut resource = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            resource.insert(k.to_owned(), v);
        }
    };
    put("service", args.service.clone().map(Value::from));
    put("environment", args.environment.clone().map(Value::from));
    put("artifact", args.artifact.clone().map(Value::from));
    put("deploymentId", args.deployment_id.clone().map(Value::from));
    put("repo", args.repo.clone().map(Value::from));
    put("number", args.number.map(Value::from));
    put("sha", args.sha.clone().map(Value::from));
    put("changeId", args.change_id.clone().map(Value::from));
    put("migration", args.migration.clone().map(Value::from));
    put("phase", args.phase.clone().map(Value::from));
    let mut context = json!({"emergency": args.emergency});
    if let Some(plan) = &args.rollback_plan {
        context["rollbackPlan"] = json!(plan);
    }
    if let (Some(rate), Some(p95)) = (args.canary_error_rate, args.canary_p95_ms) {
        context["canary"] = json!({"errorRate": rate, "p95LatencyMs": p95});
    }
    let body = json!({"principal": args.principal, "action": args.action, "resource": resource, "context": context});
    let client = Client::new(&args.server)?;
    let answer = match client.post_json("/v1/decisions", &body.to_string()) {
        Ok((_, answer)) => answer,
        Err(ClientError::Refused { code, message, .. }) => return Err(format!("{code}: {message}")),
        Err(e) => return Err(e.to_string()),
    };
    let allowed = answer.get("decision").and_then(Value::as_str) == Some("allow");
    let reasons: Vec<(String, String)> = answer
        .get("reasons")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                    (field("policy"), field("advice"))
                })
                .collect()
        })
        .unwrap_or_default();
    let obligations: Vec<String> = answer
        .get("obligations")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let decision_id = answer.get("decisionId").and_then(Value::as_str).unwrap_or_default();
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default()),
        "github" => {
            // Workflow commands: https://docs.github.com/actions (::error / ::notice).
            if allowed {
                println!("::notice title=shiplog gate::{} allowed (decision {decision_id})", args.action);
                for o in &obligations {
                    println!("::warning title=shiplog obligation::{o}");
                }
            } else {
                for (policy, advice) in &reasons {
                    println!("::error title=shiplog gate {policy}::{}", workflow_escape(advice));
                }
            }
        }
        _ => {
            if allowed {
                println!("ALLOWED: {} (decision {decision_id})", args.action);
                for o in &obligations {
                    println!("  obligation: {o}");
                }
            } else {
                println!("DENIED: {} (decision {decision_id})", args.action);
                for (policy, advice) in &reasons {
                    println!("  {policy}: {advice}");
                }
            }
        }
    }
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// GitHub workflow commands take `%`, CR and LF escaped in their message.
fn workflow_escape(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}
