//! `cairn node drain`: kubectl drain's flags and words, the plan printed with `--dry-run` (or as JSON/YAML),
//! progress as it happens, and an exit status that is 0 only when every moved pod is gone.

use std::time::Duration;

use anyhow::{Context, bail};
use cairn_api::DrainSpec;
use kube::Client;
use node_maintenance::drain::{self, Action, DrainOptions, DrainPlan, SkipReason};

use super::{
    Targets,
    display::DrainDisplay,
    on_server::{self, ServerFlags},
};
use crate::output::{OutputFormat, table};

/// Flags of `cairn node drain`.
#[derive(Debug, clap::Args)]
pub(crate) struct DrainArgs {
    #[command(flatten)]
    targets: Targets,
    #[command(flatten)]
    flags: DrainFlags,
    /// How many nodes drain at once. Budgets hold across them: the API server grants each eviction against a
    /// budget's allowance at that moment.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    concurrency: u16,
    /// Print what the drain would do to every pod, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run, the plan; otherwise the drained plans (with --server, the NodeMaintenance), printed
    /// when done: table, json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    #[command(flatten)]
    on_server: ServerFlags,
}

/// kubectl drain's flags, with its meanings (shared by `drain` and `remove`).
#[derive(Debug, clap::Args)]
pub(crate) struct DrainFlags {
    /// Leave DaemonSet-managed pods in place (without it, they refuse the drain).
    #[arg(long)]
    ignore_daemonsets: bool,
    /// Delete pods with emptyDir volumes; their data is lost (without it, they refuse the drain).
    #[arg(long)]
    delete_emptydir_data: bool,
    /// Delete pods that no controller manages; nothing recreates them (without it, they refuse the drain).
    #[arg(long)]
    force: bool,
    /// Delete pods instead of evicting them: PodDisruptionBudgets are not consulted.
    #[arg(long)]
    disable_eviction: bool,
    /// Seconds each pod gets to terminate; -1: the pod's own terminationGracePeriodSeconds.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    grace_period: i64,
    /// How long to wait for each node's drain (a Go duration such as 5m); 0s: as long as it takes.
    #[arg(long, default_value = "0s")]
    timeout: String,
    /// Only pods whose labels match this selector.
    #[arg(long)]
    pod_selector: Option<String>,
    /// Skip pods whose deletion began more than this many seconds ago (0: never skip).
    #[arg(long, default_value_t = 0)]
    skip_wait_for_delete_timeout: u64,
    /// Drain even when the nodes that stay have no room for some of the moved pods (they would stay Pending).
    #[arg(long)]
    ignore_capacity: bool,
}

impl DrainFlags {
    /// The flags as a NodeMaintenance carries them; --timeout has no place there (--deadline has).
    fn spec(&self) -> anyhow::Result<DrainSpec> {
        let options = self.options()?;
        if options.timeout.is_some() {
            bail!("--timeout does not apply to --server: give --deadline (and --deadline-action) instead");
        }
        Ok(DrainSpec {
            ignore_daemon_sets: options.ignore_daemonsets,
            delete_empty_dir_data: options.delete_emptydir_data,
            force: options.force,
            disable_eviction: options.disable_eviction,
            grace_period_seconds: options.grace_period,
            pod_selector: options.pod_selector,
            skip_wait_for_delete_timeout_seconds: options.skip_wait_for_delete_timeout.map(|d| d.as_secs()),
            ignore_capacity: options.ignore_capacity,
        })
    }

    /// The drain options the flags give, or why they are invalid.
    pub(super) fn options(&self) -> anyhow::Result<DrainOptions> {
        if let Some(selector) = &self.pod_selector {
            cairn_kube::selectors::parse_label_selector(selector).context("invalid --pod-selector")?;
        }
        let timeout = cairn_kube::duration::parse_duration(&self.timeout).context("invalid --timeout")?;
        let grace_period = match self.grace_period {
            -1 => None,
            seconds => Some(u32::try_from(seconds).map_err(|_| {
                anyhow::anyhow!("invalid --grace-period {seconds}: give seconds (0 or more), or -1 for the pod's own")
            })?),
        };
        Ok(DrainOptions {
            ignore_daemonsets: self.ignore_daemonsets,
            delete_emptydir_data: self.delete_emptydir_data,
            force: self.force,
            disable_eviction: self.disable_eviction,
            grace_period,
            timeout: (!timeout.is_zero()).then_some(timeout),
            pod_selector: self.pod_selector.clone(),
            skip_wait_for_delete_timeout: (self.skip_wait_for_delete_timeout > 0)
                .then(|| Duration::from_secs(self.skip_wait_for_delete_timeout)),
            ignore_capacity: self.ignore_capacity,
        })
    }
}

fn action_text(action: Action) -> &'static str {
    match action {
        Action::Evict => "evict",
        Action::Delete => "delete",
        Action::Skip(SkipReason::DaemonSet) => "skip: DaemonSet",
        Action::Skip(SkipReason::Mirror) => "skip: mirror pod",
        Action::Skip(SkipReason::Terminating) => "skip: terminating",
    }
}

/// The plans as a table: every pod, what happens to it, and what refuses or holds it up.
pub(super) fn plan_table(plans: &[DrainPlan]) -> String {
    let mut rows = vec![["NODE", "POD", "ACTION", "BLOCKED BY"].map(String::from).to_vec()];
    let mut verdicts = Vec::new();
    for plan in plans {
        for step in &plan.pods {
            let mut blockers: Vec<String> =
                step.refused_by.iter().map(|g| format!("refused: {}", g.refusal())).collect();
            blockers.extend(step.holds.iter().map(|h| format!("waits: {h}")));
            let pod = step.pod.to_string();
            blockers.extend(plan.no_room.iter().filter(|s| s.pod == pod).map(|s| format!("no room: {}", s.reason)));
            let action = if step.refused_by.is_empty() { action_text(step.action) } else { "refused" };
            rows.push(vec![plan.node.clone(), step.pod.to_string(), action.to_owned(), blockers.join("; ")]);
        }
        let moving = plan.moving().count();
        verdicts.push(match plan.refusal() {
            Some(reasons) => format!("node {} would be refused, and left as it is:\n{reasons}", plan.node),
            None => format!("node {}: {moving} pod(s) would move, {} stay", plan.node, plan.pods.len() - moving),
        });
    }
    format!("{}\n{}\n", table(&rows).trim_end(), verdicts.join("\n"))
}

/// Plans the drain of every node together; with --dry-run prints the plans, with --server hands the drain to
/// the server, otherwise drains them ([`drain_all`]).
pub(super) async fn run(args: DrainArgs, client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let options = args.flags.options()?;
    let nodes = args.targets.resolve(client).await?;
    if args.on_server.wanted() && !args.dry_run {
        let spec = args.flags.spec()?;
        return on_server::drain(client, namespace, nodes, spec, args.concurrency, &args.on_server, args.output).await;
    }
    let plans = drain::read_plans(client, &nodes, &options).await?;
    if args.dry_run {
        args.output.print(&plans, |plans| plan_table(plans))?;
        return Ok(plans.iter().all(|p| p.refusal().is_none()));
    }
    // With -o json|yaml, stdout holds the report: progress goes to stderr.
    let display = DrainDisplay::new(usize::from(args.concurrency), args.output != OutputFormat::Table);
    let drained = drain_all(client, &plans, &options, &display, usize::from(args.concurrency)).await?;
    if args.output != OutputFormat::Table {
        args.output.print(&drained, |_| String::new())?;
    }
    Ok(true)
}

/// Refuses every plan before any change when one is refused; otherwise drains `concurrency` nodes at a time,
/// each shown on `display`, and returns what each drain moved. A node that fails does not stop the others;
/// the failures are reported together at the end.
pub(super) async fn drain_all(
    client: &Client,
    plans: &[DrainPlan],
    options: &DrainOptions,
    display: &DrainDisplay,
    concurrency: usize,
) -> anyhow::Result<Vec<DrainPlan>> {
    if let Some(refused) = drain::refusals(plans) {
        bail!("{refused}");
    }
    let outcomes =
        drain::drain_many(client, plans, options, concurrency, |plan| display.node(&plan.node, plan.moving().count()))
            .await;
    let mut drained = Vec::new();
    let mut failed = Vec::new();
    for (_, outcome) in outcomes {
        match outcome {
            Ok(plan) => drained.push(plan),
            Err(error) => failed.push(cairn_kube::cause::chain_text(&error)),
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} node(s) not drained:\n{}", failed.len(), plans.len(), failed.join("\n"));
    }
    Ok(drained)
}
