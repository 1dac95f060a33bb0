//! `cairn node`: the cluster's nodes at a glance, cordon and uncordon, drains planned before anything moves,
//! removal with the machine's cleanup script, and the command that joins a new node. Flags and presentation only; the work is in `node-maintenance`.

mod display;
mod drain;
mod join;
mod list;
mod on_server;
mod remove;

use anyhow::bail;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, api::ListParams};
use node_maintenance::cordon::{self, Cordon, CordonOutcome};

use crate::{connect::Connection, output::write_out};

/// `cairn node` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum NodeCommand {
    /// List nodes: status, roles, kubelet version, taints, pods, CPU and memory requested against allocatable.
    #[command(alias = "get")]
    List(list::ListArgs),
    /// Mark nodes unschedulable: no new pods land there; pods already there stay.
    Cordon(Targets),
    /// Mark nodes schedulable again (evicted pods do not come back by themselves).
    Uncordon(Targets),
    /// Cordon nodes and move their pods away, as kubectl drain does, after showing (--dry-run) or checking
    /// the plan.
    Drain(Box<drain::DrainArgs>),
    /// Drain a node, delete it from the cluster, and print the script that cleans its machine.
    Remove(Box<remove::RemoveArgs>),
    /// Create a bootstrap token and print the `kubeadm join` command that adds a node with it.
    JoinCommand(join::JoinArgs),
}

/// Which nodes: names, or a label selector.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Targets {
    /// Node names.
    nodes: Vec<String>,
    /// Nodes whose labels match this selector (kubectl syntax), instead of names.
    #[arg(short = 'l', long)]
    selector: Option<String>,
}

impl Targets {
    /// The named nodes, or those the selector matches (sorted); refuses neither or both.
    async fn resolve(&self, client: &Client) -> anyhow::Result<Vec<String>> {
        match (&self.selector, self.nodes.is_empty()) {
            (Some(_), false) => bail!("give node names or --selector, not both"),
            (None, true) => bail!("name the nodes (see `cairn node list`), or select them with --selector"),
            (None, false) => Ok(self.nodes.clone()),
            (Some(selector), true) => {
                cairn_kube::selectors::parse_label_selector(selector)?;
                let nodes: Api<Node> = Api::all(client.clone());
                let listed = nodes.list(&ListParams::default().labels(selector)).await?;
                let mut names: Vec<String> = listed.items.into_iter().filter_map(|n| n.metadata.name).collect();
                if names.is_empty() {
                    bail!(
                        "no node matches --selector {selector:?}: see `cairn node list` and the nodes' labels (`kubectl get nodes --show-labels`)"
                    );
                }
                names.sort();
                Ok(names)
            }
        }
    }
}

/// Runs a `cairn node` subcommand.
pub(crate) async fn run(command: NodeCommand, connection: &Connection) -> anyhow::Result<bool> {
    // The cleanup script needs no cluster.
    if let NodeCommand::Remove(args) = &command
        && args.cleanup_script_only()
    {
        return remove::print_cleanup_script(args);
    }
    let client = connection.client().await?;
    match command {
        NodeCommand::List(args) => list::run(args, &client).await,
        NodeCommand::Cordon(targets) => turn(&client, &targets, Cordon::Cordon).await,
        NodeCommand::Uncordon(targets) => turn(&client, &targets, Cordon::Uncordon).await,
        NodeCommand::Drain(args) => drain::run(*args, &client, &connection.namespace).await,
        NodeCommand::Remove(args) => remove::run(*args, &client, connection).await,
        NodeCommand::JoinCommand(args) => join::run(args, &client).await,
    }
}

/// Cordons or uncordons each target, kubectl's lines (`node/n1 cordoned`, `node/n1 already uncordoned`).
async fn turn(client: &Client, targets: &Targets, way: Cordon) -> anyhow::Result<bool> {
    let word = match way {
        Cordon::Cordon => "cordoned",
        Cordon::Uncordon => "uncordoned",
    };
    for node in targets.resolve(client).await? {
        let line = match cordon::set(client, &node, way).await? {
            CordonOutcome::Changed => format!("node/{node} {word}\n"),
            CordonOutcome::Unchanged => format!("node/{node} already {word}\n"),
        };
        write_out(&line)?;
    }
    Ok(true)
}
