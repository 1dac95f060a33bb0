//! `cairn node list`: a table of the nodes (wider with `-o wide`), or JSON and YAML for scripts.

use kube::Client;
use node_maintenance::inventory::{self, NodeSummary};

use crate::output::{ListFormat, table};

/// Flags of `cairn node list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only nodes whose labels match this selector (kubectl syntax).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// How to print: table, wide (adds the address and taints), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
}

/// CPU as kubectl writes it: whole cores bare (`4`), anything else in millicores (`250m`).
fn cores(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{:.0}m", value * 1000.0) }
}

fn mebibytes(value: f64) -> String {
    format!("{:.0}Mi", value / (1024.0 * 1024.0))
}

fn rows(nodes: &[NodeSummary], wide: bool) -> Vec<Vec<String>> {
    let mut header =
        ["NAME", "STATUS", "ROLES", "VERSION", "PODS", "CPU REQ/ALLOC", "MEMORY REQ/ALLOC"].map(String::from).to_vec();
    if wide {
        header.extend(["INTERNAL-IP", "TAINTS"].map(String::from));
    }
    let mut rows = vec![header];
    for node in nodes {
        let roles = if node.roles.is_empty() { "<none>".to_owned() } else { node.roles.join(",") };
        let mut row = vec![
            node.name.clone(),
            node.status.clone(),
            roles,
            node.kubelet_version.clone(),
            format!("{}/{}", node.pods, node.pod_capacity),
            format!("{}/{} ({:.0}%)", cores(node.cpu.requested), cores(node.cpu.allocatable), node.cpu.percent()),
            format!(
                "{}/{} ({:.0}%)",
                mebibytes(node.memory.requested),
                mebibytes(node.memory.allocatable),
                node.memory.percent()
            ),
        ];
        if wide {
            row.push(node.internal_ip.clone().unwrap_or_else(|| "<none>".into()));
            row.push(if node.taints.is_empty() { "<none>".into() } else { node.taints.join(",") });
        }
        rows.push(row);
    }
    rows
}

/// Lists the nodes.
pub(super) async fn run(args: ListArgs, client: &Client) -> anyhow::Result<bool> {
    if let Some(selector) = &args.selector {
        cairn_kube::selectors::parse_label_selector(selector)?;
    }
    let nodes = inventory::list(client, args.selector.as_deref()).await?;
    args.output.print(&nodes, |nodes, wide| table(&rows(nodes, wide)))?;
    Ok(true)
}
