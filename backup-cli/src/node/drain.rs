//! `cairn node drain`: kubectl drain's flags and words, the plan printed with `--dry-run` (or as JSON/YAML),
//! progress as it happens, and an exit status that is 0 only when every moved pod is gone.

use std::time::Duration;

use anyhow::{Context, bail};
use kube::Client;
use node_maintenance::drain::{self, Action, DrainEvent, DrainOptions, DrainPlan, SkipReason};

use super::Targets;
use crate::output::{OutputFormat, table, write_out};

/// Flags of `cairn node drain`.
#[derive(Debug, clap::Args)]
pub(crate) struct DrainArgs {
    #[command(flatten)]
    targets: Targets,
    #[command(flatten)]
    flags: DrainFlags,
    /// Print what the drain would do to every pod, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run, the plan; otherwise the drained plans, printed when done: table, json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
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

/// kubectl's line for each event (warnings on stderr).
fn event_line(node: &str, event: &DrainEvent) -> Option<String> {
    Some(match event {
        DrainEvent::Cordoned(node_maintenance::cordon::CordonOutcome::Changed) => format!("node/{node} cordoned"),
        DrainEvent::Cordoned(_) => format!("node/{node} already cordoned"),
        DrainEvent::Warning(text) => {
            eprintln!("Warning: {text}");
            return None;
        }
        DrainEvent::Moving(pod, Action::Delete) => format!("deleting pod {pod}"),
        DrainEvent::Moving(pod, _) => format!("evicting pod {pod}"),
        DrainEvent::HeldUp(pod, reason) => format!("pod {pod} cannot be evicted yet: {reason}; trying again in 5 s"),
        DrainEvent::Accepted(_) => return None,
        DrainEvent::Gone(pod, Action::Delete) => format!("pod/{} deleted", pod.name),
        DrainEvent::Gone(pod, _) => format!("pod/{} evicted", pod.name),
    })
}

/// Plans the drain of every node together; with --dry-run prints the plans, otherwise drains them
/// ([`drain_all`]).
pub(super) async fn run(args: DrainArgs, client: &Client) -> anyhow::Result<bool> {
    let options = args.flags.options()?;
    let nodes = args.targets.resolve(client).await?;
    let plans = drain::read_plans(client, &nodes, &options).await?;
    if args.dry_run {
        args.output.print(&plans, |plans| plan_table(plans))?;
        return Ok(plans.iter().all(|p| p.refusal().is_none()));
    }
    // With -o json|yaml, stdout holds the report: progress goes to stderr.
    let drained = drain_all(client, &plans, &options, args.output != OutputFormat::Table).await?;
    if args.output != OutputFormat::Table {
        args.output.print(&drained, |_| String::new())?;
    }
    Ok(true)
}

/// Refuses every plan before any change when one is refused; otherwise drains each node in turn, progress
/// on stdout (or stderr), and returns what each drain moved.
pub(super) async fn drain_all(
    client: &Client,
    plans: &[DrainPlan],
    options: &DrainOptions,
    to_stderr: bool,
) -> anyhow::Result<Vec<DrainPlan>> {
    let refusals: Vec<String> =
        plans.iter().filter_map(|p| p.refusal().map(|reasons| format!("node {}:\n{reasons}", p.node))).collect();
    if !refusals.is_empty() {
        bail!("cannot drain, and nothing was changed:\n{}", refusals.join("\n"));
    }
    let mut drained = Vec::new();
    for plan in plans {
        let node = &plan.node;
        let report = |event: DrainEvent| {
            if let Some(line) = event_line(node, &event) {
                report_line(to_stderr, &line);
            }
        };
        drained.push(drain::drain(client, plan, options, &report).await?);
        report_line(to_stderr, &format!("node/{node} drained"));
    }
    Ok(drained)
}

/// A progress line, on stdout or (when stdout holds a JSON or YAML report) stderr. A reader that went away
/// does not stop a drain halfway: the line is then dropped.
fn report_line(to_stderr: bool, line: &str) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        let _ = write_out(&format!("{line}\n"));
    }
}
