//! `cairn`: the command-line front end. Argument parsing and presentation only; the work is in `backup-core`
//! `node-maintenance` and `image-maintenance`.

// The doc comments of the flag structs are clap's help text, written for a terminal: `[/PREFIX]` and
// `<server default>` there are what a person types or reads, not Markdown links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod backup;
mod client;
mod confirm;
mod connect;
mod fetch;
mod follow;
mod image;
mod install;
mod location;
mod node;
mod output;
mod progress;
mod restore;
mod schedule;
mod selection;
mod version;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use connect::Connection;

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
    /// Install Cairn's server in the cluster (CRDs, RBAC, Deployment, default storage location), or print its
    /// manifests with --dry-run -o yaml.
    Install(Box<install::InstallArgs>),
    /// Create, list, inspect, pause and delete backup schedules (needs a server).
    #[command(subcommand)]
    Schedule(Box<schedule::ScheduleCommand>),
    /// Add, list, change and delete the server's storage locations (needs a server).
    #[command(subcommand, name = "backup-location")]
    BackupLocation(Box<location::LocationCommand>),
    /// List, cordon, uncordon and drain nodes, and print the command that joins a new one.
    #[command(subcommand)]
    Node(Box<node::NodeCommand>),
    /// List the cluster's images, lint them, and update and roll back workloads' images with a recorded cause.
    #[command(subcommand)]
    Image(Box<image::ImageCommand>),
    /// Print the client's version and mode, and the server's version.
    Version(version::VersionArgs),
}

/// The mode the connection flags lead to, noted on stderr for a person at a terminal.
async fn noted_mode(connection: &Connection) -> anyhow::Result<connect::Mode> {
    let mode = connection.mode().await?;
    mode.note();
    Ok(mode)
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Backup(command) => {
            let mode = noted_mode(&cli.connection).await?;
            backup::run(*command, &cli.connection, &mode).await
        }
        Command::Restore(command) => {
            let mode = noted_mode(&cli.connection).await?;
            restore::run(*command, &cli.connection, &mode).await
        }
        Command::Schedule(command) => {
            let mode = noted_mode(&cli.connection).await?;
            schedule::run(*command, mode.server("cairn schedule")?).await
        }
        Command::BackupLocation(command) => {
            let mode = noted_mode(&cli.connection).await?;
            location::run(*command, mode.server("cairn backup-location")?).await
        }
        Command::Install(args) => install::run(*args, &cli.connection).await,
        Command::Node(command) => node::run(*command, &cli.connection).await,
        Command::Image(command) => image::run(*command, &cli.connection).await,
        Command::Version(args) => version::run(args, cli.connection.mode().await).await,
    }
}

/// The command line, noting whether `--namespace` was given on it (image commands then use it for workloads).
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    cli.connection.namespace_on_command_line =
        matches!(matches.value_source("namespace"), Some(clap::parser::ValueSource::CommandLine));
    cli
}

fn main() -> ExitCode {
    cairn_kube::memory::run_main(cairn_kube::memory::Runtime::MainThread, async_main())
}

async fn async_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| "off".into()))
        .init();
    match run(parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cairn_kube::cause::chain_text(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_parses_without_conflicting_flags() {
        super::Cli::command().debug_assert();
    }
}
