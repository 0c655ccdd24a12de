//! `shiplog`: the one binary. `serve` runs the ledger; `record` appends
//! events to a running server; `export` and `verify` let auditors check its
//! history offline; `bench` measures the ledger.

mod audit;
mod backup;
mod bench;
mod check;
mod client;
mod config;
mod files;
mod generate;
mod migrate;
mod policy;
mod record;
mod serve;
mod token;

use std::process::ExitCode;

/// JSON in, JSON out: the server and the verifier allocate and free many
/// small values, across threads, which mimalloc does markedly faster than
/// the system allocator (BENCHMARKS.md, V1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shiplog", version, about = "An event-sourced release ledger and policy service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ledger server (SQLite in the data directory by default)
    Serve(serve::ServeArgs),
    /// Append events to a running server and print their receipts
    Record(record::RecordArgs),
    /// Ask the release gates whether a step may proceed (exit 0 allow, 2 deny)
    Check(check::CheckArgs),
    /// Write the ledger's history and its signed checkpoint to a file (NDJSON)
    Export(audit::ExportArgs),
    /// Check an export or a ledger file offline, or that a server's log extends a kept checkpoint
    Verify(audit::VerifyArgs),
    /// Copy the embedded store online, checked, to a backup file
    Backup(backup::BackupArgs),
    /// Put a backup in place as the embedded store (server stopped)
    Restore(backup::RestoreArgs),
    /// Check the release gates offline: validate the policies, run their tests
    Policy(policy::PolicyArgs),
    /// Generate a realistic organisation history (NDJSON, or into a store)
    Generate(generate::GenerateArgs),
    /// Copy a ledger to another store (PostgreSQL, a new SQLite file, EventStoreDB), record for record, and check the roots match
    Migrate(migrate::MigrateArgs),
    /// Create, list and revoke API tokens (needs an admin token)
    Token(token::TokenArgs),
    /// Measure the ledger (A1: embedded batch appends; A2: concurrent HTTP appends)
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Record(args) => record::run(args),
        Command::Check(args) => check::run(args),
        Command::Export(args) => audit::export(args),
        Command::Verify(args) => audit::verify(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Policy(args) => policy::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Token(args) => token::run(args),
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
