//! `cairn version`: the client's version, the mode it is in, and the server's version, which the server
//! reports through a ServerStatusRequest.

use std::time::Duration;

use crate::client::ServerStatus;
use anyhow::Context;
use cairn_kube::duration::parse_duration;
use clap::Args;
use serde::Serialize;

use crate::{connect::Mode, output::OutputFormat};

/// `cairn version` flags.
#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// How long to wait for the server's answer (Go duration).
    #[arg(long, default_value = "10s")]
    timeout: String,
}

/// What `cairn version` reports.
#[derive(Debug, Serialize)]
struct VersionReport {
    client: ClientVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerStatus>,
}

#[derive(Debug, Serialize)]
struct ClientVersion {
    version: &'static str,
    mode: &'static str,
    detail: String,
}

fn client_text(client: &ClientVersion) -> String {
    format!("Client:\n\tVersion: {}\n\tMode: {} ({})\n", client.version, client.mode, client.detail)
}

fn server_text(server: &ServerStatus) -> String {
    format!("Server:\n\tVersion: {}\n", server.version)
}

/// Prints the versions. When the mode cannot be decided (the cluster cannot be asked) or the server does not
/// answer within the timeout, the client's version is printed (as text) and the error says what failed.
pub(crate) async fn run(args: VersionArgs, mode: anyhow::Result<Mode>) -> anyhow::Result<bool> {
    let timeout: Duration = parse_duration(&args.timeout).context("--timeout")?;
    let mode = match mode {
        Ok(mode) => mode,
        Err(error) => {
            if args.output == OutputFormat::Table {
                crate::output::write_out(&format!("Client:\n\tVersion: {}\n", backup_core::VERSION))?;
            }
            return Err(error);
        }
    };
    let mode = &mode;
    let client = ClientVersion { version: backup_core::VERSION, mode: mode.name(), detail: mode.detail() };
    let Mode::Server(server) = mode else {
        args.output.print(&VersionReport { client, server: None }, |r| client_text(&r.client))?;
        return Ok(true);
    };
    if args.output == OutputFormat::Table {
        crate::output::write_out(&client_text(&client))?;
    }
    let status = server.server_status(timeout).await?;
    match args.output {
        OutputFormat::Table => crate::output::write_out(&server_text(&status))?,
        other => other.print(&VersionReport { client, server: Some(status) }, |_| String::new())?,
    }
    Ok(true)
}
