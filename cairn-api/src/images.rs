//! Image pruning on nodes: an ImagePrune asks the image agent of one node (`cairn image agent`) to prune its
//! runtime's images and carries each image's verdict back; an ImagePrunePolicy has the server create them on a
//! schedule for every node a selector picks, and sums up what they freed and kept.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedule::SCHEDULE_PATTERN;

/// The label naming the node an ImagePrune is for (the agent watches its own).
pub const NODE_LABEL: &str = "cairn.dev/node";
/// The label naming the ImagePrunePolicy that created an ImagePrune.
pub const POLICY_LABEL: &str = "cairn.dev/image-prune-policy";
/// The value of [`NODE_LABEL`] for `node`: the name itself when it fits a label value, else Velero's rule for
/// long values (its first 57 characters and 6 hex characters of its SHA-256), as every agent and client
/// computes it.
pub fn node_label_value(node: &str) -> String {
    cairn_kube::names::label_value(node)
}

/// The label grouping the ImagePrunes one request created (one per node).
pub const RUN_LABEL: &str = "cairn.dev/image-prune-run";
/// Whether a node's image agent runs: its Lease was renewed within the duration the Lease declares.
pub fn agent_runs(
    lease: Option<&k8s_openapi::api::coordination::v1::Lease>,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else { return false };
    match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            renewed.0 + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(seconds)) > now
        }
        _ => false,
    }
}

/// The Lease an image agent renews while it runs: `image-agent-<node label value>` in the Cairn namespace.
pub fn agent_lease_name(node: &str) -> String {
    format!("image-agent-{}", node_label_value(node))
}

/// What a prune keeps beyond what the cluster names (the agent always reads that itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRules {
    /// Show every image's verdict and remove nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Patterns of image names never removed (`*` matches any run of characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// Only images built at least this long ago go (a Go duration such as `720h`); images whose build time
    /// the runtime does not give are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::DURATION_PATTERN))]
    pub older_than: Option<String>,
    /// The most recently built images of each repository that stay, used or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep_last: Option<u32>,
}

/// Prune one node's images through its image agent.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "ImagePrune",
    namespaced,
    status = "ImagePruneStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Removed","type":"integer","jsonPath":".status.removed"}"#,
    printcolumn = r#"{"name":"Freed","type":"integer","jsonPath":".status.bytesFreed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePruneSpec {
    /// The node whose runtime is pruned.
    #[schemars(length(min = 1, max = 253))]
    pub node_name: String,
    /// What is kept beyond what the cluster names.
    #[serde(flatten)]
    pub rules: PruneRules,
    /// Image names kept because retained backups name them (a restore would need them), each with the
    /// backup: the requester reads its storage locations, which the agent cannot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub protected_images: BTreeMap<String, String>,
}

/// An ImagePrune's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PrunePhase {
    /// Not yet taken by the node's agent.
    #[default]
    New,
    /// The agent is deciding and removing.
    InProgress,
    /// Every image has its verdict; the removals were made (none in a dry run).
    Completed,
    /// The prune stopped; see `message`.
    Failed,
}

impl PrunePhase {
    /// Whether the agent has finished with the object.
    pub fn is_final(self) -> bool {
        matches!(self, PrunePhase::Completed | PrunePhase::Failed)
    }
}

/// One image's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerdict {
    /// The runtime's image ID.
    pub id: String,
    /// Its tags and digests.
    #[serde(default)]
    pub names: Vec<String>,
    /// Its size.
    #[serde(default)]
    pub size_bytes: u64,
    /// `remove` (removed, or in a dry run would be) or `keep`.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// The kind of reason, for totals: `unused`, `inUse`, `sandbox`, `pinned`, `cluster`, `backup`,
    /// `keepList`, `age`, `keepLast` or `startedDuringPrune`.
    #[serde(default)]
    pub category: String,
}

/// Where an ImagePrune stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePruneStatus {
    /// The phase; absent means New.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PrunePhase>,
    /// When the agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// Why it failed, or what a person should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Images removed (in a dry run: that would be).
    #[serde(default)]
    pub removed: u32,
    /// Images kept.
    #[serde(default)]
    pub kept: u32,
    /// Bytes the removals freed (in a dry run: would free).
    #[serde(default)]
    pub bytes_freed: u64,
    /// Every image's verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageVerdict>,
}

impl ImagePrune {
    /// The request for `node`'s agent, one of run `run`: named `<prefix>-<random>` by the API server and
    /// labelled with the node (so that only its agent watches it) and the run.
    pub fn for_node(
        node: &str,
        prefix: &str,
        run: &str,
        rules: &PruneRules,
        protected_images: &BTreeMap<String, String>,
    ) -> ImagePrune {
        let mut prune = ImagePrune::new(
            "",
            ImagePruneSpec {
                node_name: node.to_owned(),
                rules: rules.clone(),
                protected_images: protected_images.clone(),
            },
        );
        let prefix: String = prefix.chars().take(50).collect();
        prune.metadata.generate_name = Some(format!("{}-", prefix.trim_end_matches(['-', '.'])));
        prune.metadata.labels = Some(BTreeMap::from([
            (NODE_LABEL.to_owned(), node_label_value(node)),
            (RUN_LABEL.to_owned(), run.to_owned()),
        ]));
        prune
    }

    /// The phase; New when no agent has taken it yet.
    pub fn phase(&self) -> PrunePhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
    }
}

/// Prune the images of the nodes a selector picks, on a schedule.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "ImagePrunePolicy",
    namespaced,
    status = "ImagePrunePolicyStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Last run","type":"date","jsonPath":".status.lastRunTimestamp"}"#,
    printcolumn = r#"{"name":"Freed","type":"integer","jsonPath":".status.lastBytesFreed"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePrunePolicySpec {
    /// When to prune: a cron expression (five fields, `@daily`, `@every 24h`), as Schedules take.
    #[schemars(pattern(SCHEDULE_PATTERN))]
    pub schedule: String,
    /// The nodes pruned: a label selector (`kubernetes.io/os=linux`); every node when empty.
    #[serde(default)]
    pub node_selector: String,
    /// What is kept beyond what the cluster names.
    #[serde(flatten)]
    pub rules: PruneRules,
    /// How many runs' ImagePrunes are kept per node (the older ones are deleted); 3 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: Option<u32>,
    /// Pause the policy: no run starts while set.
    #[serde(default)]
    pub paused: bool,
}

/// How many runs' ImagePrunes a policy keeps when it does not say.
pub const DEFAULT_PRUNE_HISTORY: u32 = 3;

/// Where an ImagePrunePolicy stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePrunePolicyStatus {
    /// `Enabled`, `FailedValidation` (see `message`), or `Paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the policy cannot run, or what went wrong in its last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_timestamp: Option<Time>,
    /// Whether every node of the last run has finished.
    #[serde(default)]
    pub last_run_finished: bool,
    /// Bytes the last run freed, all nodes together (would free, in a dry run).
    #[serde(default)]
    pub last_bytes_freed: u64,
    /// Images the last run removed.
    #[serde(default)]
    pub last_removed: u32,
    /// Images the last run kept, by reason (`in use`, `rollback history`, `backup`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_kept_by_reason: BTreeMap<String, u32>,
    /// Each node's last prune: its ImagePrune's name and phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodePruneSummary>,
}

/// One node's part of a policy's last run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePruneSummary {
    /// The node.
    pub node: String,
    /// Its ImagePrune.
    pub image_prune: String,
    /// That ImagePrune's phase.
    pub phase: String,
    /// Bytes freed there.
    #[serde(default)]
    pub bytes_freed: u64,
    /// Why it failed, or `no image agent runs on the node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::node_label_value;

    #[test]
    fn long_node_names_become_valid_distinct_label_values() {
        assert_eq!(node_label_value("worker-1"), "worker-1");
        let long = |last: char| format!("{}{last}", "n".repeat(70));
        let (a, b) = (node_label_value(&long('a')), node_label_value(&long('b')));
        assert!(a.len() <= 63 && b.len() <= 63 && a != b, "{a} {b}");
        assert_eq!(a, node_label_value(&long('a')));
    }
}
