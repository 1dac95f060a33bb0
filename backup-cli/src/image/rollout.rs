//! `cairn image set|history|rollback`: a workload's images changed with the cause recorded, its revisions
//! listed, and a return to one of them followed until rolled out.

use anyhow::Context;
use image_maintenance::rollout::{
    history::{self, Revision},
    rollback, set,
    target::Target,
};
use kube::Client;

use crate::output::{OutputFormat, table, write_out};

/// Flags of `cairn image set`.
#[derive(Debug, clap::Args)]
pub(crate) struct SetArgs {
    /// The workload: deploy/NAME, daemonset/NAME or statefulset/NAME.
    workload: String,
    /// CONTAINER=IMAGE pairs.
    #[arg(required = true)]
    images: Vec<String>,
    /// Why, recorded in kubernetes.io/change-cause and shown by `cairn image history`; default: this command.
    #[arg(long)]
    cause: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Flags of `cairn image history`.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// The workload: deploy/NAME, daemonset/NAME or statefulset/NAME.
    workload: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Flags of `cairn image rollback`.
#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    /// The workload: deploy/NAME, daemonset/NAME or statefulset/NAME.
    workload: String,
    /// The revision to return to (see `cairn image history`); default: the one before the current.
    #[arg(long)]
    to_revision: Option<i64>,
    /// How long to wait for the rollout (a Go duration).
    #[arg(long, default_value = "5m")]
    timeout: String,
    /// Do not wait for the rollout.
    #[arg(long)]
    no_wait: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

/// Sets the images and records the cause.
pub(super) async fn set(args: SetArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let target = Target::parse(&args.workload, namespace)?;
    let changes = set::parse_changes(&args.images)?;
    let cause =
        args.cause.clone().unwrap_or_else(|| format!("cairn image set {} {}", args.workload, args.images.join(" ")));
    let changed = set::set_images(client, &target, &changes, &cause).await?;
    args.output.print(&changed, |changed| {
        if changed.is_empty() {
            return format!("{target}: every image was already as asked; nothing changed\n");
        }
        changed
            .iter()
            .map(|c| format!("{target} container {} image updated: {} -> {}\n", c.container, c.from, c.to))
            .collect()
    })?;
    Ok(true)
}

fn history_table(revisions: &[Revision]) -> String {
    let mut rows = vec![["REVISION", "CURRENT", "IMAGES", "CHANGE-CAUSE", "CREATED"].map(String::from).to_vec()];
    for r in revisions {
        rows.push(vec![
            r.revision.to_string(),
            if r.current { "*".into() } else { String::new() },
            r.images.join(","),
            r.cause.clone().unwrap_or_else(|| "<none>".into()),
            r.created.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default(),
        ]);
    }
    table(&rows)
}

/// Lists the revisions.
pub(super) async fn history(args: HistoryArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let target = Target::parse(&args.workload, namespace)?;
    let revisions = history::history(client, &target).await?;
    args.output.print(&revisions, |r| history_table(r))?;
    Ok(true)
}

/// Rolls back and waits for the rollout.
pub(super) async fn rollback(args: RollbackArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let target = Target::parse(&args.workload, namespace)?;
    let timeout = cairn_kube::duration::parse_duration(&args.timeout).context("invalid --timeout")?;
    if !args.no_wait && args.output == OutputFormat::Table {
        write_out(&format!("{target}: rolling back; waiting up to {} for the rollout\n", args.timeout))?;
    }
    let done = rollback::rollback(client, &target, args.to_revision, (!args.no_wait).then_some(timeout)).await?;
    args.output.print(&done, |d| {
        let from = d.from.map(|f| format!(" from revision {f}")).unwrap_or_default();
        let state = if d.rolled_out { "rolled out" } else { "rolling out (not waited for)" };
        format!("{target} rolled back{from} to revision {} ({}): {state}\n", d.to, d.images.join(","))
    })?;
    Ok(true)
}
