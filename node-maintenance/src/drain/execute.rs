//! Carrying a drain out: the plans of every node to drain read from the cluster together (so the capacity
//! check counts them all out), refused before anything changes when a guard or the capacity check says so,
//! then each node cordoned and every moving pod evicted (or deleted) at once. An eviction a disruption
//! budget refuses (429) is retried every 5 s and reported each time with the budget and why it allows nothing;
//! the drain succeeds only once every moved pod is really gone, not when its eviction was accepted.

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use cairn_kube::errors::{describe, is_not_found};
use k8s_openapi::api::{
    core::v1::{Node, Pod},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client,
    api::{DeleteParams, EvictParams, ListParams, Preconditions},
};

use super::{
    capacity,
    plan::{Action, DrainOptions, DrainPlan, PodStep, budgets_of, plan},
};
use crate::{
    NodeError, PodRef,
    cordon::{self, Cordon, CordonOutcome},
};

/// How long a refused eviction waits before it is tried again (kubectl's interval).
const RETRY: Duration = Duration::from_secs(5);
/// How often a moved pod is looked for until it is gone.
const GONE_POLL: Duration = Duration::from_secs(1);

/// What a drain reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// The node was cordoned, or was already.
    Cordoned(CordonOutcome),
    /// What the flags allowed (kubectl's warning line).
    Warning(String),
    /// An eviction (or deletion) is being asked for.
    Moving(PodRef, Action),
    /// The eviction was refused for now; it is tried again in 5 s.
    HeldUp(PodRef, String),
    /// The eviction (or deletion) was accepted; the pod is terminating.
    Accepted(PodRef),
    /// The pod is gone (evicted or deleted, as the action says).
    Gone(PodRef, Action),
}

/// Why a drain stopped.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// A guard or the capacity check refused: nothing was changed (unless the reasons say otherwise).
    #[error("cannot drain node {node}:\n{reasons}")]
    Refused {
        /// The node.
        node: String,
        /// kubectl's lines, one per guard, each naming its flag.
        reasons: String,
    },
    /// Reading or cordoning the node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// An eviction or deletion failed for a reason retrying does not cure.
    #[error("moving pod {pod} off node {node} failed: {problem}")]
    Move {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
        /// The reason, with the fix when known.
        problem: String,
    },
    /// `--timeout` passed first.
    #[error(
        "node {node} was not drained within {seconds} s; still there: {remaining}. It stays cordoned: run the \
         drain again, or `cairn node uncordon {node}`"
    )]
    TimedOut {
        /// The node.
        node: String,
        /// The timeout.
        seconds: u64,
        /// Pods not gone yet.
        remaining: String,
    },
}

/// What a plan is made from: the nodes, every bound pod, the disruption budgets.
struct Snapshot {
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    budgets: Vec<PodDisruptionBudget>,
}

async fn snapshot(client: &Client, pod_selector: Option<&str>, node: Option<&str>) -> Result<Snapshot, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes.list(&ListParams::default()).await.map_err(|e| NodeError::kube("listing nodes", e))?.items;
    let fields = match node {
        Some(node) => format!("spec.nodeName={node}"),
        None => "spec.nodeName!=".to_owned(),
    };
    let mut params = ListParams::default().fields(&fields);
    if let Some(selector) = pod_selector {
        params = params.labels(selector);
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let pods = pods.list(&params).await.map_err(|e| NodeError::kube("listing pods", e))?.items;
    let budgets: Api<PodDisruptionBudget> = Api::all(client.clone());
    let budgets = budgets
        .list(&ListParams::default())
        .await
        .map_err(|e| NodeError::kube("listing PodDisruptionBudgets", e))?
        .items;
    Ok(Snapshot { nodes, pods, budgets })
}

/// Plans the drain of `nodes` together, as they stand now: each node's plan, with the pods the nodes that
/// stay have no room for (the capacity check counts every drained node out).
pub async fn read_plans(
    client: &Client,
    nodes: &[String],
    options: &DrainOptions,
) -> Result<Vec<DrainPlan>, DrainError> {
    // Capacity counts every pod, whatever --pod-selector moves.
    let state = snapshot(client, None, None).await?;
    let known: BTreeSet<&str> = state.nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    if let Some(missing) = nodes.iter().find(|n| !known.contains(n.as_str())) {
        return Err(NodeError::NotFound(missing.clone()).into());
    }
    let selected: Vec<Pod> = match &options.pod_selector {
        Some(selector) => {
            let matcher = cairn_kube::selectors::parse_label_selector(selector)
                .and_then(|s| cairn_kube::selectors::LabelMatcher::new(&s))
                .map_err(|e| DrainError::Refused { node: nodes.join(", "), reasons: e.to_string() })?;
            state
                .pods
                .iter()
                .filter(|p| matcher.matches(&p.metadata.labels.clone().unwrap_or_default()))
                .cloned()
                .collect()
        }
        None => state.pods.clone(),
    };
    let now = jiff::Timestamp::now();
    let mut plans: Vec<DrainPlan> =
        nodes.iter().map(|node| plan(node, &selected, &state.budgets, options, now)).collect();
    let moving: BTreeSet<(String, String)> =
        plans.iter().flat_map(|p| p.moving().map(|s| (s.pod.namespace.clone(), s.pod.name.clone()))).collect();
    let moving_pods: Vec<&Pod> = selected
        .iter()
        .filter(|p| {
            let key = (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default());
            moving.contains(&key)
        })
        .collect();
    let draining: BTreeSet<String> = nodes.iter().cloned().collect();
    for shortfall in capacity::check(&moving_pods, &state.nodes, &state.pods, &draining) {
        let owner = plans.iter_mut().find(|p| p.pods.iter().any(|s| s.pod.to_string() == shortfall.pod));
        if let Some(plan) = owner {
            plan.no_room.push(shortfall);
        }
    }
    Ok(plans)
}

/// Drains the node `planned` was made for: refuses when the plan does (nothing changed), else cordons, plans
/// again from what is on the node now (pods may have come before the cordon), moves every pod that plan
/// moves and returns once they are all gone. `report` hears each step as it happens.
pub async fn drain(
    client: &Client,
    planned: &DrainPlan,
    options: &DrainOptions,
    report: &(dyn Fn(DrainEvent) + Sync),
) -> Result<DrainPlan, DrainError> {
    let node = planned.node.as_str();
    if let Some(reasons) = planned.refusal() {
        return Err(DrainError::Refused { node: node.to_owned(), reasons });
    }
    report(DrainEvent::Cordoned(cordon::set(client, node, Cordon::Cordon).await?));
    let state = snapshot(client, options.pod_selector.as_deref(), Some(node)).await?;
    let plan = plan(node, &state.pods, &state.budgets, options, jiff::Timestamp::now());
    if let Some(reasons) = plan.refusal() {
        let reasons = format!("{reasons}\n(pods that arrived before the cordon; node {node} stays cordoned)");
        return Err(DrainError::Refused { node: node.to_owned(), reasons });
    }
    if let Some(warning) = plan.warning() {
        report(DrainEvent::Warning(warning));
    }
    let remaining = Mutex::new(plan.moving().map(|s| s.pod.clone()).collect::<BTreeSet<_>>());
    let moves = plan.moving().map(|step| async {
        move_pod(client, node, step, options, report).await?;
        remaining.lock().expect("remaining lock").remove(&step.pod);
        Ok::<(), DrainError>(())
    });
    let all = futures::future::try_join_all(moves);
    match options.timeout {
        None => all.await.map(drop)?,
        Some(limit) => match tokio::time::timeout(limit, all).await {
            Ok(result) => result.map(drop)?,
            Err(_) => {
                let remaining = remaining.lock().expect("remaining lock");
                return Err(DrainError::TimedOut {
                    node: node.to_owned(),
                    seconds: limit.as_secs(),
                    remaining: remaining.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                });
            }
        },
    }
    Ok(plan)
}

/// Evicts or deletes one pod, retrying refusals, then waits until it is gone.
async fn move_pod(
    client: &Client,
    node: &str,
    step: &PodStep,
    options: &DrainOptions,
    report: &(dyn Fn(DrainEvent) + Sync),
) -> Result<(), DrainError> {
    let pod = &step.pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    // The uid precondition: a pod recreated under the same name is another pod, and is left alone.
    let delete = DeleteParams {
        grace_period_seconds: options.grace_period,
        preconditions: Some(Preconditions { uid: Some(pod.uid.clone()), resource_version: None }),
        ..DeleteParams::default()
    };
    report(DrainEvent::Moving(pod.clone(), step.action));
    loop {
        let result = match step.action {
            Action::Delete => pods.delete(&pod.name, &delete).await.map(drop),
            _ => {
                let params = EvictParams { delete_options: Some(delete.clone()), ..EvictParams::default() };
                pods.evict(&pod.name, &params).await.map(drop)
            }
        };
        match result {
            Ok(()) => {
                report(DrainEvent::Accepted(pod.clone()));
                break;
            }
            Err(error) if is_not_found(&error) => break,
            // The uid precondition failed (replaced by another pod of the same name), or the pod changed
            // under the request: gone in the first case, asked again in the second.
            Err(error) if status_code(&error) == Some(409) => match pods.get_opt(&pod.name).await {
                Ok(Some(live)) if live.metadata.uid.as_deref() == Some(pod.uid.as_str()) => {
                    tokio::time::sleep(GONE_POLL).await;
                }
                Ok(_) => break,
                Err(error) => {
                    let problem = describe(&error);
                    return Err(DrainError::Move { node: node.to_owned(), pod: pod.clone(), problem });
                }
            },
            Err(error) if status_code(&error) == Some(429) => {
                report(DrainEvent::HeldUp(pod.clone(), held_up_because(client, pod, &error).await));
                tokio::time::sleep(RETRY).await;
            }
            Err(error) => {
                return Err(DrainError::Move {
                    node: node.to_owned(),
                    pod: pod.clone(),
                    problem: move_problem(&error),
                });
            }
        }
    }
    wait_gone(&pods, pod).await;
    report(DrainEvent::Gone(pod.clone(), step.action));
    Ok(())
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn move_problem(error: &kube::Error) -> String {
    let problem = describe(error);
    if problem.contains("more than one PodDisruptionBudget") {
        format!(
            "{problem}; the Eviction API cannot decide between two budgets: merge them, or drain with --disable-eviction"
        )
    } else {
        problem
    }
}

/// Why a disruption budget refuses `pod`'s eviction now, from the budgets as they stand: each one's name, how
/// many pods it counts healthy and wants, and whether the pod itself is unready under `IfHealthyBudget`.
async fn held_up_because(client: &Client, pod: &PodRef, error: &kube::Error) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &pod.namespace);
    let (Ok(live), Ok(budgets)) = (pods.get(&pod.name).await, budgets.list(&ListParams::default()).await) else {
        return describe(error);
    };
    let ready = live
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let reasons: Vec<String> = budgets_of(&live, &budgets.items)
        .into_iter()
        .map(|budget| {
            let name = budget.metadata.name.as_deref().unwrap_or_default();
            let status = budget.status.clone().unwrap_or_default();
            let policy = budget.spec.as_ref().and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
            let mut reason = format!(
                "PodDisruptionBudget {}/{name} allows {} disruptions now ({} of {} pods healthy, {} needed)",
                pod.namespace,
                status.disruptions_allowed.unwrap_or(0),
                status.current_healthy.unwrap_or(0),
                status.expected_pods.unwrap_or(0),
                status.desired_healthy.unwrap_or(0)
            );
            if !ready && policy != Some("AlwaysAllow") {
                reason.push_str(
                    "; this pod is not ready, and under unhealthyPodEvictionPolicy IfHealthyBudget it may go only \
                     once the budget is met (AlwaysAllow lets unhealthy pods go)",
                );
            }
            reason
        })
        .collect();
    if reasons.is_empty() { describe(error) } else { reasons.join("; ") }
}

/// Waits until the pod is gone: not found, or replaced by another of the same name.
async fn wait_gone(pods: &Api<Pod>, pod: &PodRef) {
    loop {
        match pods.get_opt(&pod.name).await {
            Ok(None) => return,
            Ok(Some(live)) if live.metadata.uid.as_deref() != Some(pod.uid.as_str()) => return,
            _ => tokio::time::sleep(GONE_POLL).await,
        }
    }
}
