//! The drain plan, computed before anything moves and without I/O: for every pod on the node, what the drain
//! does with it (evict, delete, or leave it) and what stands in the way. kubectl's rules, with its words:
//! DaemonSet pods need `--ignore-daemonsets` and are then left in place; mirror (static) pods are never
//! touched; pods with emptyDir data need `--delete-emptydir-data`; pods no controller recreates need
//! `--force`; finished pods go without either. Beyond kubectl, the plan says which pods a disruption budget
//! holds right now, and which carry `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`.

use std::time::Duration;

use cairn_kube::selectors::LabelMatcher;
use k8s_openapi::api::{core::v1::Pod, policy::v1::PodDisruptionBudget};
use serde::Serialize;

use super::capacity::Shortfall;
use crate::PodRef;

/// The annotation the kubelet puts on mirror pods (the API's view of static pods).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The cluster autoscaler's annotation; `"false"` asks that the pod not be evicted.
const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";

/// kubectl drain's flags, with its meanings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainOptions {
    /// Leave DaemonSet pods in place instead of refusing the drain.
    pub ignore_daemonsets: bool,
    /// Delete pods with emptyDir volumes (their data is lost) instead of refusing.
    pub delete_emptydir_data: bool,
    /// Delete pods that no controller manages (they are not recreated) instead of refusing.
    pub force: bool,
    /// Delete pods instead of evicting them, bypassing PodDisruptionBudgets.
    pub disable_eviction: bool,
    /// Seconds each pod gets to terminate; `None`: the pod's own.
    pub grace_period: Option<u32>,
    /// How long the whole drain may take; `None`: as long as it needs.
    pub timeout: Option<Duration>,
    /// Only pods whose labels match (a label selector).
    pub pod_selector: Option<String>,
    /// Skip pods whose deletion began more than this long ago (a node that is gone never finishes them).
    pub skip_wait_for_delete_timeout: Option<Duration>,
    /// Drain even when the nodes that stay have no room for some of the moved pods.
    pub ignore_capacity: bool,
}

/// What the drain does with a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Evicted through the Eviction API, which honours disruption budgets.
    Evict,
    /// Deleted (`--disable-eviction`), bypassing disruption budgets.
    Delete,
    /// Left alone.
    Skip(SkipReason),
}

/// Why a pod is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// A DaemonSet's pod (with `--ignore-daemonsets`): the DaemonSet would recreate it at once.
    DaemonSet,
    /// A mirror pod: the kubelet runs it from a file on the node.
    Mirror,
    /// Being deleted for longer than `--skip-wait-for-delete-timeout`.
    Terminating,
}

/// A kind of pod kubectl refuses to drain unless a flag allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Guard {
    /// Managed by a DaemonSet: `--ignore-daemonsets`.
    DaemonSet,
    /// Has emptyDir data: `--delete-emptydir-data`.
    LocalStorage,
    /// No controller: `--force`.
    NoController,
}

impl Guard {
    /// kubectl's words when the guard refuses.
    pub fn refusal(self) -> &'static str {
        match self {
            Guard::DaemonSet => "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)",
            Guard::LocalStorage => "Pods with local storage (use --delete-emptydir-data to override)",
            Guard::NoController => "Pods declare no controller (use --force to override)",
        }
    }

    /// kubectl's words when the flag allowed it.
    pub fn warning(self) -> &'static str {
        match self {
            Guard::DaemonSet => "ignoring DaemonSet-managed Pods",
            Guard::LocalStorage => "deleting Pods with local storage",
            Guard::NoController => "deleting Pods that declare no controller",
        }
    }
}

/// Something that will hold a pod's eviction up, though the drain may go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Hold {
    /// A disruption budget allows no disruption now: the eviction waits until it does.
    Budget {
        /// `namespace/name` of the budget.
        budget: String,
        /// Pods it counts as healthy now.
        current_healthy: i32,
        /// Healthy pods it wants.
        desired_healthy: i32,
    },
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`: its owner asked that it not be moved.
    SafeToEvictFalse,
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Budget { budget, current_healthy, desired_healthy } => write!(
                f,
                "PodDisruptionBudget {budget} allows no disruption now ({current_healthy} healthy, \
                 {desired_healthy} needed)"
            ),
            Hold::SafeToEvictFalse => write!(f, "annotated {SAFE_TO_EVICT}: \"false\""),
        }
    }
}

/// One pod's part in the drain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStep {
    /// The pod.
    pub pod: PodRef,
    /// What the drain does with it.
    pub action: Action,
    /// Guards that refuse the drain (their flag not given).
    pub refused_by: Vec<Guard>,
    /// Guards whose flag allowed the pod to go.
    pub allowed_by_flag: Vec<Guard>,
    /// What will hold its eviction up.
    pub holds: Vec<Hold>,
}

/// Every pod of a node and what the drain does with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainPlan {
    /// The node.
    pub node: String,
    /// Its pods, by namespace and name.
    pub pods: Vec<PodStep>,
    /// Moved pods the nodes that stay have no room for (see [`super::capacity`]), once checked.
    pub no_room: Vec<Shortfall>,
    /// Whether pods without room refuse the drain (no `--ignore-capacity`).
    #[serde(skip)]
    pub enforce_capacity: bool,
}

impl DrainPlan {
    /// Pods grouped under each guard in `pick`ed steps: `"cannot delete <refusal>: a/b, c/d"` lines, kubectl's.
    fn grouped(&self, pick: impl Fn(&PodStep) -> &[Guard], words: impl Fn(Guard) -> &'static str) -> Vec<String> {
        [Guard::DaemonSet, Guard::LocalStorage, Guard::NoController]
            .into_iter()
            .filter_map(|guard| {
                let pods: Vec<String> =
                    self.pods.iter().filter(|s| pick(s).contains(&guard)).map(|s| s.pod.to_string()).collect();
                (!pods.is_empty()).then(|| format!("{}: {}", words(guard), pods.join(", ")))
            })
            .collect()
    }

    /// Why the drain is refused, in kubectl's words, one line per guard (`cannot delete Pods declare no
    /// controller (use --force to override): default/go-http`); `None` when it may go ahead.
    pub fn refusal(&self) -> Option<String> {
        let mut lines: Vec<String> =
            self.grouped(|s| &s.refused_by, Guard::refusal).iter().map(|l| format!("cannot delete {l}")).collect();
        if self.enforce_capacity && !self.no_room.is_empty() {
            let pods: Vec<String> = self.no_room.iter().map(|s| format!("{} ({})", s.pod, s.reason)).collect();
            lines.push(format!(
                "the nodes that stay have no room for {} pod(s) (use --ignore-capacity to drain anyway): {}",
                pods.len(),
                pods.join("; ")
            ));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// What the flags allowed, kubectl's warning line (`ignoring DaemonSet-managed Pods: ...; deleting Pods
    /// that declare no controller: ...`); `None` when nothing.
    pub fn warning(&self) -> Option<String> {
        let lines = self.grouped(|s| &s.allowed_by_flag, Guard::warning);
        (!lines.is_empty()).then(|| lines.join("; "))
    }

    /// The pods the drain moves (evicts or deletes).
    pub fn moving(&self) -> impl Iterator<Item = &PodStep> {
        self.pods.iter().filter(|s| !matches!(s.action, Action::Skip(_)))
    }
}

fn finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn controller_kind(pod: &Pod) -> Option<&str> {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    owners.iter().find(|o| o.controller == Some(true)).map(|o| o.kind.as_str())
}

fn has_empty_dir(pod: &Pod) -> bool {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    volumes.iter().any(|v| v.empty_dir.is_some())
}

/// The disruption budgets of `pod`'s namespace that select it.
pub fn budgets_of<'a>(pod: &Pod, budgets: &'a [PodDisruptionBudget]) -> Vec<&'a PodDisruptionBudget> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    budgets
        .iter()
        .filter(|b| b.metadata.namespace == pod.metadata.namespace)
        .filter(|b| {
            let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
            // A budget with no selector selects nothing (policy/v1); an empty one selects every pod.
            selector.and_then(|s| LabelMatcher::new(s).ok()).is_some_and(|m| m.matches(&labels))
        })
        .collect()
}

fn holds(pod: &Pod, budgets: &[PodDisruptionBudget]) -> Vec<Hold> {
    let mut holds: Vec<Hold> = budgets_of(pod, budgets)
        .into_iter()
        .filter_map(|budget| {
            let status = budget.status.as_ref()?;
            (status.disruptions_allowed.unwrap_or(0) <= 0).then(|| Hold::Budget {
                budget: format!(
                    "{}/{}",
                    budget.metadata.namespace.as_deref().unwrap_or_default(),
                    budget.metadata.name.as_deref().unwrap_or_default()
                ),
                current_healthy: status.current_healthy.unwrap_or(0),
                desired_healthy: status.desired_healthy.unwrap_or(0),
            })
        })
        .collect();
    let annotations = pod.metadata.annotations.as_ref();
    if annotations.and_then(|a| a.get(SAFE_TO_EVICT)).is_some_and(|v| v == "false") {
        holds.push(Hold::SafeToEvictFalse);
    }
    holds
}

/// The step for one pod, `deleting_for` how long its deletion has been under way (if it has begun).
fn step(pod: &Pod, budgets: &[PodDisruptionBudget], options: &DrainOptions, deleting_for: Option<Duration>) -> PodStep {
    let mut step = PodStep {
        pod: PodRef::of(pod),
        action: if options.disable_eviction { Action::Delete } else { Action::Evict },
        refused_by: Vec::new(),
        allowed_by_flag: Vec::new(),
        holds: Vec::new(),
    };
    let guard = |step: &mut PodStep, guard: Guard, allowed: bool| {
        if allowed { step.allowed_by_flag.push(guard) } else { step.refused_by.push(guard) }
    };
    if let (Some(elapsed), Some(limit)) = (deleting_for, options.skip_wait_for_delete_timeout)
        && elapsed > limit
    {
        step.action = Action::Skip(SkipReason::Terminating);
        return step;
    }
    if controller_kind(pod) == Some("DaemonSet") {
        guard(&mut step, Guard::DaemonSet, options.ignore_daemonsets);
        step.action = Action::Skip(SkipReason::DaemonSet);
        return step;
    }
    if pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)) {
        step.action = Action::Skip(SkipReason::Mirror);
        return step;
    }
    // A finished pod or one already being deleted loses nothing more by going.
    let going_anyway = finished(pod) || deleting_for.is_some();
    if has_empty_dir(pod) && !going_anyway {
        guard(&mut step, Guard::LocalStorage, options.delete_emptydir_data);
    }
    if controller_kind(pod).is_none() && !going_anyway {
        guard(&mut step, Guard::NoController, options.force);
    }
    if !options.disable_eviction && !going_anyway {
        step.holds = holds(pod, budgets);
    }
    step
}

/// The plan to drain `node` of `pods` (those bound to it), under `budgets`, at time `now`.
pub fn plan(
    node: &str,
    pods: &[Pod],
    budgets: &[PodDisruptionBudget],
    options: &DrainOptions,
    now: jiff::Timestamp,
) -> DrainPlan {
    let mut steps: Vec<PodStep> = pods
        .iter()
        .filter(|pod| crate::inventory::node_of(pod) == Some(node))
        .map(|pod| {
            let deleting_for = pod.metadata.deletion_timestamp.as_ref().map(|since| {
                let elapsed = now.duration_since(since.0);
                Duration::try_from(elapsed).unwrap_or_default()
            });
            step(pod, budgets, options, deleting_for)
        })
        .collect();
    steps.sort_by(|a, b| a.pod.cmp(&b.pod));
    DrainPlan { node: node.to_owned(), pods: steps, no_room: Vec::new(), enforce_capacity: !options.ignore_capacity }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(namespace: &str, name: &str, extra: serde_json::Value) -> Pod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "labels": {"app": name}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running"},
        });
        merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
                for (key, value) in from {
                    merge(into.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn owned_by(kind: &str) -> serde_json::Value {
        json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": "u", "controller": true}]}})
    }

    /// The seed's node: a DaemonSet pod, a Deployment's pod, the bare pod `default/go-http`, a StatefulSet's pod.
    fn seed_node() -> Vec<Pod> {
        vec![
            pod("kube-system", "calico-node-zdnxl", owned_by("DaemonSet")),
            pod("default", "deployment-hellok8s-go-http-55cfd74847-gq5rd", owned_by("ReplicaSet")),
            pod("default", "go-http", json!({})),
            pod("default", "stateful-nginx-0", owned_by("StatefulSet")),
        ]
    }

    fn now() -> jiff::Timestamp {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_seeds_drain_is_refused_naming_go_http_in_kubectls_words() {
        let options = DrainOptions { ignore_daemonsets: true, ..DrainOptions::default() };
        let plan = plan("node-1", &seed_node(), &[], &options, now());
        assert_eq!(
            plan.refusal().unwrap(),
            "cannot delete Pods declare no controller (use --force to override): default/go-http"
        );
        assert_eq!(plan.warning().unwrap(), "ignoring DaemonSet-managed Pods: kube-system/calico-node-zdnxl");
    }

    #[test]
    fn with_force_every_pod_but_the_daemonsets_is_evicted() {
        let options = DrainOptions { ignore_daemonsets: true, force: true, ..DrainOptions::default() };
        let plan = plan("node-1", &seed_node(), &[], &options, now());
        assert!(plan.refusal().is_none());
        assert_eq!(
            plan.warning().unwrap(),
            "ignoring DaemonSet-managed Pods: kube-system/calico-node-zdnxl; deleting Pods that declare no \
             controller: default/go-http"
        );
        let moving: Vec<String> = plan.moving().map(|s| s.pod.name.clone()).collect();
        assert_eq!(moving, ["deployment-hellok8s-go-http-55cfd74847-gq5rd", "go-http", "stateful-nginx-0"]);
        assert!(plan.moving().all(|s| s.action == Action::Evict));
    }

    #[test]
    fn without_ignore_daemonsets_the_daemonset_pod_refuses_and_is_still_never_deleted() {
        let plan = plan("node-1", &seed_node(), &[], &DrainOptions { force: true, ..DrainOptions::default() }, now());
        assert!(plan.refusal().unwrap().contains("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"));
        let daemon = plan.pods.iter().find(|s| s.pod.name == "calico-node-zdnxl").unwrap();
        assert_eq!(daemon.action, Action::Skip(SkipReason::DaemonSet));
    }

    #[test]
    fn mirror_pods_are_never_touched_and_finished_pods_need_no_flag() {
        let mirror = pod("kube-system", "etcd-node-1", json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}}));
        let done = pod(
            "default",
            "job-once",
            json!({"status": {"phase": "Succeeded"}, "spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
        );
        let plan = plan("node-1", &[mirror, done], &[], &DrainOptions::default(), now());
        assert!(plan.refusal().is_none());
        assert_eq!(plan.pods[0].action, Action::Evict);
        assert_eq!(plan.pods[1].action, Action::Skip(SkipReason::Mirror));
    }

    #[test]
    fn emptydir_data_needs_its_flag_and_other_nodes_pods_are_not_in_the_plan() {
        let cache = pod("shop", "cache", json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}));
        let mut elsewhere = pod("shop", "web", owned_by("ReplicaSet"));
        elsewhere.spec.as_mut().unwrap().node_name = Some("node-2".into());
        let mut options = DrainOptions { force: true, ..DrainOptions::default() };
        let refused = plan("node-1", &[cache.clone(), elsewhere.clone()], &[], &options, now());
        assert_eq!(
            refused.refusal().unwrap(),
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): shop/cache"
        );
        assert_eq!(refused.pods.len(), 1);
        options.delete_emptydir_data = true;
        assert!(plan("node-1", &[cache], &[], &options, now()).refusal().is_none());
    }

    #[test]
    fn a_budget_that_allows_nothing_and_safe_to_evict_false_hold_the_pod() {
        let web = pod(
            "shop",
            "web-1",
            json!({"metadata": {"annotations": {SAFE_TO_EVICT: "false"}, "ownerReferences": owned_by("ReplicaSet")["metadata"]["ownerReferences"]}}),
        );
        let budget: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web-1"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2},
        }))
        .unwrap();
        let other_namespace: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "other"},
            "spec": {"selector": {}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 1, "expectedPods": 1},
        }))
        .unwrap();
        let plan = plan("node-1", &[web], &[budget, other_namespace], &DrainOptions::default(), now());
        let holds: Vec<String> = plan.pods[0].holds.iter().map(ToString::to_string).collect();
        assert_eq!(
            holds,
            [
                "PodDisruptionBudget shop/web allows no disruption now (2 healthy, 2 needed)",
                "annotated cluster-autoscaler.kubernetes.io/safe-to-evict: \"false\"",
            ]
        );
        assert!(plan.refusal().is_none(), "a budget holds the drain up, it does not refuse it");
    }

    #[test]
    fn pods_deleted_long_ago_are_skipped_with_skip_wait_for_delete_timeout() {
        let stuck = pod("shop", "stuck", json!({"metadata": {"deletionTimestamp": "2026-11-30T23:00:00Z"}}));
        let options =
            DrainOptions { skip_wait_for_delete_timeout: Some(Duration::from_secs(60)), ..Default::default() };
        let plan = plan("node-1", std::slice::from_ref(&stuck), &[], &options, now());
        assert_eq!(plan.pods[0].action, Action::Skip(SkipReason::Terminating));
        let waited = plan_without_skip(&stuck);
        assert_eq!(waited.pods[0].action, Action::Evict);
        assert!(waited.refusal().is_none(), "a pod being deleted needs no --force");
    }

    fn plan_without_skip(pod: &Pod) -> DrainPlan {
        plan("node-1", std::slice::from_ref(pod), &[], &DrainOptions::default(), now())
    }
}
