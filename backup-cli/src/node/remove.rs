//! `cairn node remove`: the node drained (the same plan and checks as `drain`), with `--backup` the
//! namespaces of its pods backed up first, its Node deleted, and the machine's cleanup script printed on
//! stdout (progress and the backup's report go to stderr, so `> clean.sh` keeps the script alone).
//! `--cleanup-script` prints the script alone.

use anyhow::bail;
use cairn_kube::names::{NAME_RULE, is_valid_name, label_value};
use kube::Client;
use node_maintenance::{drain, remove};

use super::{
    display::DrainDisplay,
    drain::{DrainFlags, drain_all, plan_table},
};
use crate::{
    connect::Connection,
    output::{reserve_stdout, write_out, write_reserved},
};

/// Flags of `cairn node remove`.
#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    /// The node.
    node: String,
    #[command(flatten)]
    flags: DrainFlags,
    /// Print the machine's cleanup script and do nothing else (the node need not exist any more).
    #[arg(long)]
    cleanup_script: bool,
    /// Print the drain's plan and change nothing.
    #[arg(long, conflicts_with = "cleanup_script")]
    dry_run: bool,
    /// Back up the namespaces of the node's pods before anything changes (as `cairn backup create --wait`,
    /// standalone or through the server); the node is left alone unless the backup Completed.
    #[arg(long, conflicts_with_all = ["cleanup_script", "dry_run"])]
    backup: bool,
    /// With --backup: the backup's name; default NODE-YYYYMMDDhhmmss.
    #[arg(long, requires = "backup")]
    backup_name: Option<String>,
}

impl RemoveArgs {
    /// Whether only the cleanup script is asked for.
    pub(super) fn cleanup_script_only(&self) -> bool {
        self.cleanup_script
    }
}

/// Prints the cleanup script of the node `args` names.
pub(super) fn print_cleanup_script(args: &RemoveArgs) -> anyhow::Result<bool> {
    write_reserved(&remove::cleanup_script(&args.node))?;
    Ok(true)
}

/// Backs up (with --backup), drains and deletes the node, then prints the cleanup script.
pub(super) async fn run(args: RemoveArgs, client: &Client, connection: &Connection) -> anyhow::Result<bool> {
    let options = args.flags.options()?;
    let plans = drain::read_plans(client, std::slice::from_ref(&args.node), &options).await?;
    if args.dry_run {
        write_out(&plan_table(&plans))?;
        return Ok(plans.iter().all(|p| p.refusal().is_none()));
    }
    if let Some(refused) = drain::refusals(&plans) {
        bail!("{refused}");
    }
    if args.backup {
        reserve_stdout();
        back_up_pods_namespaces(&args, &plans, connection).await?;
    }
    drain_all(client, &plans, &options, &DrainDisplay::new(1, true), 1).await?;
    remove::delete_node(client, &args.node).await?;
    eprintln!(
        "node/{node} deleted. Run the script below on that machine, as root, to clean it (kubeadm reset and what \
         it leaves); `cairn node remove {node} --cleanup-script` prints it again.",
        node = args.node
    );
    write_reserved(&remove::cleanup_script(&args.node))?;
    Ok(true)
}

/// Backs up the namespaces of the pods on the node, labelled `cairn.dev/removed-node`; an error unless the
/// backup Completed.
async fn back_up_pods_namespaces(
    args: &RemoveArgs,
    plans: &[drain::DrainPlan],
    connection: &Connection,
) -> anyhow::Result<()> {
    let node = &args.node;
    let mut namespaces: Vec<String> = plans.iter().flat_map(|p| &p.pods).map(|s| s.pod.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        eprintln!("node/{node} runs no pods: there is nothing to back up");
        return Ok(());
    }
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d%H%M%S");
    let name = args.backup_name.clone().unwrap_or_else(|| format!("{node}-{stamp}"));
    if !is_valid_name(&name) {
        bail!("the backup name {name:?} is not valid ({NAME_RULE}): give one with --backup-name");
    }
    eprintln!("backing up namespace(s) {} of the pods on node/{node} as backup {name}", namespaces.join(", "));
    let labels = format!("cairn.dev/removed-node={}", label_value(node));
    if !crate::backup::create_of_namespaces(&name, &namespaces, &labels, connection).await? {
        bail!(
            "backup {name} did not complete, so node {node} was left as it is: see `cairn backup describe {name}`, \
             fix the cause and run the removal again (or remove without --backup)"
        );
    }
    Ok(())
}
