//! `cairn`: the command-line front end. Argument parsing and presentation only; the work is in `backup-core`.

mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use output::OutputFormat;

/// Kubernetes backup, restore and cluster maintenance.
#[derive(Debug, Parser)]
#[command(name = "cairn", version = backup_core::VERSION, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the client's version.
    Version {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// What `cairn version` reports.
#[derive(Debug, Serialize)]
struct VersionReport {
    client: ClientVersion,
}

#[derive(Debug, Serialize)]
struct ClientVersion {
    version: &'static str,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version { output } => {
            let report = VersionReport { client: ClientVersion { version: backup_core::VERSION } };
            output.print(&report, |r| format!("Client:\n\tVersion: {}\n", r.client.version))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
