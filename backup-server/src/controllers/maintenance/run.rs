//! Carrying a NodeMaintenance out in a task of its own: the nodes planned together and refused before any
//! change when a guard or the capacity check says so, then drained `concurrency` at a time, with each pod's
//! progress and blocker written to the status every two seconds. At the deadline the drain stops and the
//! nodes are uncordoned, or (deadlineAction Delete) the pods still there are deleted without consulting
//! their budgets; the status says which.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cairn_api::{DeadlineAction, MaintenancePhase, NodeDrainStatus, NodeMaintenance, PodDrainStatus};
use cairn_kube::cause::chain_text;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use node_maintenance::{
    PodRef,
    cordon::{self, Cordon},
    drain::{self, Action, DrainError, DrainEvent, DrainOptions, DrainPlan, NodeObserver},
};
use serde_json::{Value, json};

use super::{Planned, key};
use crate::{
    context::Context,
    controllers::{patch_final_status, patch_status},
};

/// How often the status is written while a drain runs.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Starts the drain of `maintenance` in a task of this process, unless one runs already.
pub(super) fn start(context: &Arc<Context>, maintenance: NodeMaintenance, planned: Planned) {
    let running_key = key(&maintenance);
    let Some(guard) = context.start_running(running_key.clone()) else {
        return;
    };
    let task_context = context.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        carry_out(&task_context, &maintenance, planned).await;
        task_context.drains.lock().expect("drains lock").remove(&key(&maintenance));
    });
    context.drains.lock().expect("drains lock").insert(running_key, task.abort_handle());
}

/// How the drain ended, before the status says it.
enum Ending {
    /// Every node was drained.
    Drained,
    /// A plan was refused (nothing changed) or reading the cluster failed.
    Stopped(String),
    /// Some nodes were not drained.
    NodesFailed(usize),
    /// The deadline passed.
    DeadlinePassed,
}

async fn carry_out(context: &Arc<Context>, maintenance: &NodeMaintenance, planned: Planned) {
    let name = maintenance.name_any();
    let uid = maintenance.uid();
    let api = context.api::<NodeMaintenance>();
    let previous = maintenance.status.clone().unwrap_or_default();
    let started = previous.start_timestamp.as_ref().map_or_else(Timestamp::now, |t| t.0);
    let resumed = previous.phase == Some(MaintenancePhase::Draining);
    let mut message =
        resumed.then(|| format!("resumed at {} after the server that was draining stopped", Timestamp::now()));
    tracing::info!(maintenance = %name, nodes = ?planned.nodes, resumed, "drain starting");
    let status = json!({"phase": MaintenancePhase::Draining, "startTimestamp": Time(started), "message": message});
    if let Err(error) = patch_status(&api, &name, uid.as_deref(), status).await {
        tracing::warn!(maintenance = %name, "{error}");
    }
    let progress = Progress::default();
    let writer =
        AbortOnDrop(tokio::spawn(write_progress(context.clone(), name.clone(), uid.clone(), progress.clone())));
    let drained = drain_nodes(context, &planned.nodes, &planned.options, planned.concurrency, &progress);
    let mut ending = match planned.deadline {
        None => drained.await,
        Some(deadline) => {
            let left = deadline.saturating_sub(elapsed_since(started));
            tokio::time::timeout(left, drained).await.unwrap_or(Ending::DeadlinePassed)
        }
    };
    let mut phase = MaintenancePhase::Drained;
    if let Ending::DeadlinePassed = ending {
        let (after, text, next) = pass_deadline(context, maintenance, &planned, &progress).await;
        (phase, message, ending) = (after, Some(text), next);
    }
    drop(writer);
    let last_error = match ending {
        Ending::Drained | Ending::DeadlinePassed => None,
        Ending::Stopped(reason) => Some(reason),
        Ending::NodesFailed(count) => Some(format!(
            "{count} of {} node(s) not drained (see each node's lastError); they stay cordoned: delete this \
             NodeMaintenance to uncordon them",
            planned.nodes.len()
        )),
    };
    if last_error.is_some() {
        phase = MaintenancePhase::Failed;
    }
    let status = json!({
        "phase": phase,
        "completionTimestamp": Time(Timestamp::now()),
        "message": message,
        "lastError": last_error,
        "nodes": progress.nodes(),
    });
    tracing::info!(maintenance = %name, "drain finished: {}", phase.as_str());
    if let Err(error) = patch_final_status(&api, &name, uid.as_deref(), status).await {
        tracing::error!(maintenance = %name, "{error}");
    }
}

/// What the deadline does, as the spec's `deadlineAction` says: stop and uncordon the nodes, or delete the
/// pods still there without consulting their budgets. Returns the phase so far, the message saying which
/// happened, and how the drain ended.
async fn pass_deadline(
    context: &Arc<Context>,
    maintenance: &NodeMaintenance,
    planned: &Planned,
    progress: &Progress,
) -> (MaintenancePhase, String, Ending) {
    let deadline_text = planned.deadline.map(cairn_kube::duration::format_duration).unwrap_or_default();
    match maintenance.spec.deadline_action {
        DeadlineAction::Uncordon => {
            let mut text = format!(
                "the deadline ({deadline_text}) passed with pods still on the nodes: the drain stopped and the \
                 nodes were uncordoned (deadlineAction Uncordon); pods not moved stay where they are"
            );
            for node in &planned.nodes {
                progress.update(node, |entry| {
                    if entry.phase != "Drained" {
                        entry.phase = "Stopped".into();
                    }
                });
                if let Err(error) = cordon::set(&context.client, node, Cordon::Uncordon).await {
                    text.push_str(&format!("; uncordoning {node} failed: {error}"));
                }
            }
            (MaintenancePhase::DeadlineExceeded, text, Ending::DeadlinePassed)
        }
        DeadlineAction::Delete => {
            let name = maintenance.name_any();
            let text = format!(
                "the deadline ({deadline_text}) passed with pods still on the nodes: they are deleted without \
                 consulting their disruption budgets (deadlineAction Delete)"
            );
            tracing::warn!(maintenance = %name, "{text}");
            let status = json!({"message": text});
            let api = context.api::<NodeMaintenance>();
            if let Err(error) = patch_status(&api, &name, maintenance.uid().as_deref(), status).await {
                tracing::warn!(maintenance = %name, "{error}");
            }
            let options = DrainOptions { disable_eviction: true, ignore_capacity: true, ..planned.options.clone() };
            let ending = drain_nodes(context, &planned.nodes, &options, planned.concurrency, progress).await;
            (MaintenancePhase::Drained, text, ending)
        }
    }
}

fn elapsed_since(started: Timestamp) -> Duration {
    let span = Timestamp::now().duration_since(started);
    Duration::try_from(span).unwrap_or_default()
}

/// Plans the nodes together, refuses before any change when a plan is refused, else drains them.
async fn drain_nodes(
    context: &Context,
    nodes: &[String],
    options: &DrainOptions,
    concurrency: usize,
    progress: &Progress,
) -> Ending {
    let client = &context.client;
    let plans = match drain::read_plans(client, nodes, options).await {
        Ok(plans) => plans,
        Err(error) => return Ending::Stopped(chain_text(&error)),
    };
    if let Some(refused) = drain::refusals(&plans) {
        return Ending::Stopped(refused);
    }
    progress.plan(&plans);
    let outcomes = drain::drain_many(client, &plans, options, concurrency, |plan| NodeProgress {
        progress: progress.clone(),
        node: plan.node.clone(),
    })
    .await;
    match outcomes.iter().filter(|(_, outcome)| outcome.is_err()).count() {
        0 => Ending::Drained,
        failed => Ending::NodesFailed(failed),
    }
}

/// Every node's drain as the status shows it, shared by the drains and the status writer.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<Vec<NodeDrainStatus>>>);

impl Progress {
    fn nodes(&self) -> Vec<NodeDrainStatus> {
        self.0.lock().expect("progress lock").clone()
    }

    /// Starts (or, after a deadline's escalation, restarts) each node's entry from its plan.
    fn plan(&self, plans: &[DrainPlan]) {
        let mut nodes = self.0.lock().expect("progress lock");
        *nodes = plans
            .iter()
            .map(|plan| NodeDrainStatus {
                name: plan.node.clone(),
                phase: "Waiting".into(),
                pods_gone: 0,
                pods_to_move: plan.moving().count() as u32,
                pods: plan.moving().map(|step| pod_status(&step.pod, step.action, "Pending")).collect(),
                last_error: None,
            })
            .collect();
    }

    fn update(&self, node: &str, change: impl FnOnce(&mut NodeDrainStatus)) {
        let mut nodes = self.0.lock().expect("progress lock");
        if let Some(entry) = nodes.iter_mut().find(|n| n.name == node) {
            change(entry);
        }
    }
}

fn action_word(action: Action) -> &'static str {
    if action == Action::Delete { "delete" } else { "evict" }
}

fn pod_status(pod: &PodRef, action: Action, state: &str) -> PodDrainStatus {
    PodDrainStatus {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        action: action_word(action).into(),
        state: state.into(),
        blocker: None,
    }
}

/// Sets `pod`'s state (adding it when the drain's second plan, made after the cordon, found it).
fn set_pod(entry: &mut NodeDrainStatus, pod: &PodRef, action: Option<Action>, state: &str, blocker: Option<String>) {
    let position = entry.pods.iter().position(|p| p.namespace == pod.namespace && p.name == pod.name);
    let index = position.unwrap_or_else(|| {
        entry.pods.push(pod_status(pod, action.unwrap_or(Action::Evict), state));
        entry.pods_to_move += 1;
        entry.pods.len() - 1
    });
    let status = &mut entry.pods[index];
    if let Some(action) = action {
        status.action = action_word(action).into();
    }
    if state == "Gone" && status.state != "Gone" {
        entry.pods_gone += 1;
    }
    status.state = state.into();
    status.blocker = blocker;
}

/// One node's drain, heard into [`Progress`].
struct NodeProgress {
    progress: Progress,
    node: String,
}

impl NodeObserver for NodeProgress {
    fn event(&self, event: DrainEvent) {
        self.progress.update(&self.node, |entry| match event {
            DrainEvent::Cordoned(_) => entry.phase = "Draining".into(),
            DrainEvent::Warning(_) => {}
            DrainEvent::Moving(pod, action) => set_pod(entry, &pod, Some(action), "Moving", None),
            DrainEvent::HeldUp(pod, reason) => set_pod(entry, &pod, None, "HeldUp", Some(reason)),
            DrainEvent::Accepted(pod) => set_pod(entry, &pod, None, "Terminating", None),
            DrainEvent::Gone(pod, action) => set_pod(entry, &pod, Some(action), "Gone", None),
        });
    }

    fn finished(&self, outcome: &Result<DrainPlan, DrainError>) {
        self.progress.update(&self.node, |entry| match outcome {
            Ok(_) => entry.phase = "Drained".into(),
            Err(error) => {
                entry.phase = "Failed".into();
                entry.last_error = Some(chain_text(error));
            }
        });
    }
}

/// A task aborted when this is dropped: the status writer stops with its drain, even when the drain's own
/// task is aborted (its NodeMaintenance was deleted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes the nodes' progress into the status every [`STATUS_EVERY`] until aborted.
async fn write_progress(context: Arc<Context>, name: String, uid: Option<String>, progress: Progress) {
    let api = context.api::<NodeMaintenance>();
    let mut written: Option<Value> = None;
    loop {
        tokio::time::sleep(STATUS_EVERY).await;
        let nodes = serde_json::to_value(progress.nodes()).expect("a status serialises");
        if written.as_ref() == Some(&nodes) {
            continue;
        }
        match patch_status(&api, &name, uid.as_deref(), json!({"nodes": nodes})).await {
            Ok(()) => written = Some(nodes),
            Err(error) => tracing::debug!(maintenance = %name, "{error}"),
        }
    }
}
