//! `cairn node remove`: the node drained (the same plan and checks as `drain`), its Node deleted, and the
//! machine's cleanup script printed on stdout (progress goes to stderr, so `> clean.sh` keeps the script).
//! `--cleanup-script` prints the script alone.

use kube::Client;
use node_maintenance::{drain, remove};

use super::{
    display::DrainDisplay,
    drain::{DrainFlags, drain_all, plan_table},
};
use crate::output::write_out;

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
}

impl RemoveArgs {
    /// Whether only the cleanup script is asked for.
    pub(super) fn cleanup_script_only(&self) -> bool {
        self.cleanup_script
    }
}

/// Prints the cleanup script of the node `args` names.
pub(super) fn print_cleanup_script(args: &RemoveArgs) -> anyhow::Result<bool> {
    write_out(&remove::cleanup_script(&args.node))?;
    Ok(true)
}

/// Drains and deletes the node, then prints the cleanup script.
pub(super) async fn run(args: RemoveArgs, client: &Client) -> anyhow::Result<bool> {
    let options = args.flags.options()?;
    let plans = drain::read_plans(client, std::slice::from_ref(&args.node), &options).await?;
    if args.dry_run {
        write_out(&plan_table(&plans))?;
        return Ok(plans.iter().all(|p| p.refusal().is_none()));
    }
    drain_all(client, &plans, &options, &DrainDisplay::new(1, true), 1).await?;
    remove::delete_node(client, &args.node).await?;
    eprintln!(
        "node/{node} deleted. Run the script below on that machine, as root, to clean it (kubeadm reset and what \
         it leaves); `cairn node remove {node} --cleanup-script` prints it again.",
        node = args.node
    );
    write_out(&remove::cleanup_script(&args.node))?;
    Ok(true)
}
