//! `shiplog policy validate` and `shiplog policy test`: the release gates,
//! checked offline with the same engine the server runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use shiplog_policy::{PolicyEngine, PolicySources, read_cases, run_cases};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Args, Debug)]
struct Sources {
    /// The policies directory (*.cedar, shadow/*.cedar, entities.json)
    #[arg(long, env = "SHIPLOG_POLICIES", default_value = "policies", value_name = "DIR")]
    policies: PathBuf,
    /// The directory of people, teams, services and environments [default: DIR/entities.json]
    #[arg(long, env = "SHIPLOG_ENTITIES", value_name = "PATH")]
    entities: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate the policies (strict mode, against schema/shiplog.cedarschema) and the directory,
    /// and the API access policy (against schema/access.cedarschema)
    Validate {
        #[command(flatten)]
        sources: Sources,
        /// The API access policy to check [default: DIR/access/api.cedar when it exists]
        #[arg(long, value_name = "FILE")]
        access: Option<PathBuf>,
    },
    /// Run the policy test cases (DIR/tests/*.json)
    Test {
        #[command(flatten)]
        sources: Sources,
        /// The test cases [default: DIR/tests]
        #[arg(long, value_name = "DIR")]
        tests: Option<PathBuf>,
    },
}

fn load(sources: &Sources) -> Result<PolicyEngine, String> {
    let read = PolicySources::read_dir(&sources.policies, sources.entities.as_deref()).map_err(|e| e.to_string())?;
    PolicyEngine::load(&read).map_err(|e| format!("{e}\nthe policy set is invalid; fix the place named above"))
}

pub fn run(args: PolicyArgs) -> Result<ExitCode, String> {
    match args.command {
        PolicyCommand::Validate { sources, access } => {
            let access = access.or_else(|| Some(sources.policies.join("access/api.cedar")).filter(|p| p.is_file()));
            if let Some(path) = access {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read the access policy {}: {e}", path.display()))?;
                let file = shiplog_policy::SourceFile { name: path.display().to_string(), text };
                let policy = shiplog_policy::access::AccessPolicy::load(&[file])
                    .map_err(|e| format!("{e}\nthe access policy is invalid; fix the place named above"))?;
                println!("valid: access policy {}, set {}", path.display(), policy.hash());
            }
            let engine = load(&sources)?;
            println!(
                "valid: {} policy files, policy set {}{}",
                engine.files().len(),
                engine.hash(),
                if engine.has_shadow() { ", with a shadow set" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { sources, tests } => {
            let engine = load(&sources)?;
            let dir = tests.unwrap_or_else(|| sources.policies.join("tests"));
            let cases = read_cases(&dir).map_err(|e| e.to_string())?;
            let failures = run_cases(&engine, &cases);
            for (case, why) in &failures {
                println!("FAIL {case}: {why}");
            }
            println!("policy tests: {} passed, {} failed", cases.len() - failures.len(), failures.len());
            Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
