//! `cairn image`: the cluster's images at a glance, lint of the images workloads name, and image updates with
//! a recorded cause, their history and rollback. Flags and presentation only; the work is in
//! `image-maintenance`. Workloads are looked for in `-n NAMESPACE` when given on the command line, else in
//! the kubeconfig's namespace, as kubectl does (the `CAIRN_NAMESPACE` default names the server's namespace and
//! does not apply here).

mod agent;
mod lint;
mod list;
mod prune;
mod rollout;

use crate::connect::Connection;

/// `cairn image` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {
    /// List every image on every node, with its size, nodes and pods, and what a prune could free per node.
    #[command(alias = "get")]
    List(list::ListArgs),
    /// Remove the images that nothing needs (no container uses them, the cluster and retained backups name
    /// them nowhere, not the pause image, not pinned, not on the keep-list): on this node over CRI, or on
    /// other nodes through their image agents (--node, --all-nodes); --dry-run shows each verdict.
    Prune(prune::PruneArgs),
    /// Run a node's image agent: carry out the ImagePrunes for this node (from `prune --node/--all-nodes`
    /// and the server's ImagePrunePolicies) over the runtime's CRI socket. Installed on every node by
    /// `cairn install --image-agent`.
    Agent(agent::AgentArgs),
    /// Flag images that make rollbacks and rebuilds unreliable (`:latest`, no tag, no digest, no version in
    /// the tag, Always pulled digests); exit 1 when anything is flagged.
    Lint(lint::LintArgs),
    /// Set container images of a Deployment, DaemonSet or StatefulSet, recording the cause.
    Set(rollout::SetArgs),
    /// List a workload's revisions with their images, cause and time.
    History(rollout::HistoryArgs),
    /// Return a workload to a previous revision and wait for the rollout.
    Rollback(rollout::RollbackArgs),
}

/// Runs a `cairn image` subcommand.
pub(crate) async fn run(command: ImageCommand, connection: &Connection) -> anyhow::Result<bool> {
    let client = connection.client().await?;
    let namespace = match connection.namespace_on_command_line {
        true => connection.namespace.clone(),
        false => client.default_namespace().to_owned(),
    };
    match command {
        ImageCommand::List(args) => list::run(args, &client, &connection.namespace).await,
        ImageCommand::Lint(args) => lint::run(args, &client, &namespace).await,
        ImageCommand::Prune(args) => prune::run(args, &client, connection).await,
        ImageCommand::Agent(args) => agent::run(args, &client, &connection.namespace).await,
        ImageCommand::Set(args) => rollout::set(args, &client, &namespace).await,
        ImageCommand::History(args) => rollout::history(args, &client, &namespace).await,
        ImageCommand::Rollback(args) => rollout::rollback(args, &client, &namespace).await,
    }
}
