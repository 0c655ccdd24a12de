//! `shiplog`: the one binary. `serve` runs the ledger; `record` appends
//! events to a running server; `bench` measures the ledger.

mod bench;
mod client;
mod config;
mod record;
mod serve;

use std::process::ExitCode;

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
    /// Measure the ledger (A1: embedded batch appends; A2: concurrent HTTP appends)
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Record(args) => record::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
