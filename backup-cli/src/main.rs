//! `cairn`: the command-line front end. Argument parsing and presentation only; the work is in `backup-core`.

mod backup;
mod connect;
mod output;
mod progress;
mod restore;
mod selection;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use connect::Connection;
use output::OutputFormat;

/// Kubernetes backup, restore and cluster maintenance.
#[derive(Debug, Parser)]
#[command(name = "cairn", version = backup_core::VERSION, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, inspect, verify and delete backups.
    #[command(subcommand)]
    Backup(Box<backup::BackupCommand>),
    /// Restore backups into the cluster, preview restores, list and inspect them.
    #[command(subcommand)]
    Restore(Box<restore::RestoreCommand>),
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

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Backup(command) => backup::run(*command, &cli.connection).await,
        Command::Restore(command) => restore::run(*command, &cli.connection).await,
        Command::Version { output } => {
            let report = VersionReport { client: ClientVersion { version: backup_core::VERSION } };
            output.print(&report, |r| format!("Client:\n\tVersion: {}\n", r.client.version))?;
            Ok(true)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| "off".into()))
        .init();
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
