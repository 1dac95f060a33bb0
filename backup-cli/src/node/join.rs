//! `cairn node join-command`: a new bootstrap token and the `kubeadm join` command that uses it, as one line
//! for a shell, as text for a person (with the version check), or as JSON and YAML with each part apart.

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, api::ListParams};
use node_maintenance::join;

use crate::output::{OutputFormat, write_out};

/// Flags of `cairn node join-command`.
#[derive(Debug, clap::Args)]
pub(crate) struct JoinArgs {
    /// How long the token works (a Go duration, at most 8760h).
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// Print the command line alone, for `ssh NODE "$(cairn node join-command --print-only)"`.
    #[arg(long, conflicts_with = "output")]
    print_only: bool,
    /// table (the command with the version check and expiry), json or yaml (each part apart).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Creates the token and prints the command.
pub(super) async fn run(args: JoinArgs, client: &Client) -> anyhow::Result<bool> {
    let ttl = cairn_kube::duration::parse_duration(&args.ttl).map_err(|e| anyhow::anyhow!("invalid --ttl: {e}"))?;
    let nodes: Api<Node> = Api::all(client.clone());
    let skew = join::version_skew(&nodes.list(&ListParams::default()).await?.items);
    let command = join::create(client, ttl).await?;
    if args.print_only {
        write_out(&format!("{}\n", command.command))?;
        return Ok(true);
    }
    if let Some(warning) = skew {
        eprintln!("Warning: {warning}");
    }
    args.output.print(&command, |command| {
        format!(
            "{}\n# The token {} works until {} (kube-system/bootstrap-token-{}); delete that Secret to revoke it.\n",
            command.command,
            command.token_id,
            command.expires.strftime("%Y-%m-%d %H:%M:%S UTC"),
            command.token_id
        )
    })?;
    Ok(true)
}
