//! The NodeMaintenance resource: nodes the server drains (with kubectl drain's options) so that a long
//! drain outlives the terminal that asked for it, its progress pod by pod, and what happens at its deadline.
//! Deleting the object uncordons its nodes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The finalizer that uncordons a NodeMaintenance's nodes when the object is deleted.
pub const UNCORDON_FINALIZER: &str = "cairn.dev/uncordon";

/// Drain nodes on the server: cordon them, move their pods as kubectl drain would, and report.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "NodeMaintenance",
    namespaced,
    status = "NodeMaintenanceStatus",
    shortname = "nm",
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".spec.nodes"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeMaintenanceSpec {
    /// Why the nodes are drained (for the people who read the object later).
    #[serde(default)]
    pub reason: String,
    /// The nodes to drain.
    #[schemars(length(min = 1))]
    pub nodes: Vec<String>,
    /// kubectl drain's options.
    #[serde(default)]
    pub drain: DrainSpec,
    /// How many nodes drain at once (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: Option<u16>,
    /// How long the drain may take from its start (a Go duration such as `1h`); no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::DURATION_PATTERN))]
    pub deadline: Option<String>,
    /// What happens when the deadline passes with pods still on the nodes.
    #[serde(default)]
    pub deadline_action: DeadlineAction,
}

/// kubectl drain's options, with its meanings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainSpec {
    /// Leave DaemonSet-managed pods in place (without it, they refuse the drain).
    #[serde(default)]
    pub ignore_daemon_sets: bool,
    /// Delete pods with emptyDir volumes; their data is lost.
    #[serde(default)]
    pub delete_empty_dir_data: bool,
    /// Delete pods that no controller manages; nothing recreates them.
    #[serde(default)]
    pub force: bool,
    /// Delete pods instead of evicting them: disruption budgets are not consulted.
    #[serde(default)]
    pub disable_eviction: bool,
    /// Seconds each pod gets to terminate; the pod's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// Only pods whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<String>,
    /// Skip pods whose deletion began more than this many seconds ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_wait_for_delete_timeout_seconds: Option<u64>,
    /// Drain even when the nodes that stay have no room for some moved pods.
    #[serde(default)]
    pub ignore_capacity: bool,
}

/// What a passing deadline does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeadlineAction {
    /// Stop the drain and uncordon the nodes; pods not moved yet stay where they are.
    #[default]
    Uncordon,
    /// Delete the pods still there, without consulting their disruption budgets.
    Delete,
}

/// A NodeMaintenance's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MaintenancePhase {
    /// Not yet seen by the server.
    #[default]
    New,
    /// The spec cannot be run; see `lastError`.
    FailedValidation,
    /// Nodes are being cordoned and drained.
    Draining,
    /// Every node is cordoned and every pod to move is gone.
    Drained,
    /// A drain was refused or failed; see `lastError` and each node's.
    Failed,
    /// The deadline passed with the action `Uncordon`: the drain stopped and the nodes were uncordoned.
    DeadlineExceeded,
}

impl MaintenancePhase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenancePhase::New => "New",
            MaintenancePhase::FailedValidation => "FailedValidation",
            MaintenancePhase::Draining => "Draining",
            MaintenancePhase::Drained => "Drained",
            MaintenancePhase::Failed => "Failed",
            MaintenancePhase::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    /// Whether the server has finished with the object.
    pub fn is_final(self) -> bool {
        !matches!(self, MaintenancePhase::New | MaintenancePhase::Draining)
    }
}

/// Where a NodeMaintenance stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeMaintenanceStatus {
    /// The phase; absent means New.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MaintenancePhase>,
    /// When the drain started (the deadline counts from here, across server restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// What happened that a person should know: the deadline and what it did, a resumed drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the drain stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Each node's drain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeDrainStatus>,
}

/// One node's drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDrainStatus {
    /// The node.
    pub name: String,
    /// Waiting, Draining, Drained, Failed, or Stopped (by the deadline).
    pub phase: String,
    /// Pods moved and gone so far.
    #[serde(default)]
    pub pods_gone: u32,
    /// Pods to move.
    #[serde(default)]
    pub pods_to_move: u32,
    /// Every pod the drain moves, with where it stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodDrainStatus>,
    /// Why this node's drain failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One pod a drain moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDrainStatus {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// evict or delete.
    pub action: String,
    /// Pending, Moving, HeldUp, Terminating or Gone.
    pub state: String,
    /// What holds it up now (a disruption budget and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocker: Option<String>,
}

impl NodeMaintenance {
    /// The phase; New when the server has not seen it yet.
    pub fn phase(&self) -> MaintenancePhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
    }
}
