//! The restore record and per-object results, in the shape of `cairn.dev/v1` Restore (Velero's field names).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use cairn_api::{ExistingResourcePolicy, RestoreSpec};
use cairn_kube::report::Problem;

/// A restore's phase (Velero's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestorePhase {
    /// Every selected object was restored, found unchanged, or skipped by policy.
    Completed,
    /// Some objects failed (see the errors).
    PartiallyFailed,
    /// A preview: nothing was changed.
    DryRun,
    /// The restore could not go on (see the failure reason); what it applied until then stays.
    Failed,
}

impl RestorePhase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            RestorePhase::Completed => "Completed",
            RestorePhase::PartiallyFailed => "PartiallyFailed",
            RestorePhase::DryRun => "DryRun",
            RestorePhase::Failed => "Failed",
        }
    }
}

/// Where a restore stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The phase.
    pub phase: RestorePhase,
    /// When it started.
    pub start_timestamp: Timestamp,
    /// When it ended.
    pub completion_timestamp: Timestamp,
    /// Objects selected from the backup.
    pub total_items: u64,
    /// Objects created or updated.
    pub items_restored: u64,
    /// Number of warnings.
    pub warnings: u64,
    /// Number of errors.
    pub errors: u64,
    /// Why the restore could not go on, when it is Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The stored record of one restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// `cairn.dev/v1`.
    pub api_version: String,
    /// `Restore`.
    pub kind: String,
    /// Name and labels.
    pub metadata: cairn_api::RecordMeta,
    /// What was asked for.
    pub spec: RestoreSpec,
    /// What happened.
    pub status: RestoreStatus,
}

/// What happened to one object (or, in a dry run, what would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemOutcome {
    /// Created (dry run: would be created).
    Created,
    /// Merge-patched (dry run: would be).
    Updated,
    /// Already there, equal.
    Unchanged,
    /// Left alone: exists and differs under policy none, or not restorable by rule.
    Skipped,
    /// Could not be applied; the reason says why.
    Failed,
}

impl ItemOutcome {
    /// Lowercase, as in resource lists: `created`, `updated`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Created => "created",
            ItemOutcome::Updated => "updated",
            ItemOutcome::Unchanged => "unchanged",
            ItemOutcome::Skipped => "skipped",
            ItemOutcome::Failed => "failed",
        }
    }
}

/// One object's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// `deployments.apps`.
    pub resource: String,
    /// The version it was restored at.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace in the cluster (after mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// What happened.
    pub outcome: ItemOutcome,
    /// Why, for skipped and failed objects (and notes on others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fields that differ from the cluster's version (updated, or skipped because they differ).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    /// The record (stored unless this was a dry run).
    pub restore: RestoreRecord,
    /// Every object's result, in the order applied (kept compressed).
    pub items: super::ItemResults,
    /// Warnings.
    pub warnings: Vec<Problem>,
    /// Errors.
    pub errors: Vec<Problem>,
    /// Every exec hook run (or skipped) in a restored pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::backup::HookRun>,
}
