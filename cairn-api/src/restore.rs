//! The Restore resource: what to restore (shared with the stored record) and where it stands in the cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SelectionSpec;

/// What to do with objects that already exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Never touch them; warn when they differ (the default).
    #[default]
    None,
    /// Merge-patch the difference into them.
    Update,
}

/// What to restore and how. Stored in the record as given; on a server the Restore object's spec.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "Restore",
    namespaced,
    status = "RestoreObjectStatus",
    shortname = "rs",
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.backupName"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.errors"}"#,
    printcolumn = r#"{"name":"Warnings","type":"integer","jsonPath":".status.warnings"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The backup to read. On a server it may be left empty when `scheduleName` is given.
    #[serde(default)]
    pub backup_name: String,
    /// Restore the latest Completed backup of this schedule (server only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_name: Option<String>,
    /// Which objects.
    #[serde(flatten)]
    pub selection: SelectionSpec,
    /// Old namespace -> new namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mapping: BTreeMap<String, String>,
    /// Existing objects: `none` (leave them) or `update` (merge-patch them).
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Keep Services' node ports.
    #[serde(default)]
    pub preserve_node_ports: bool,
    /// A ConfigMap in the Cairn namespace holding Velero's resource modifier rules (`version: v1`), applied to
    /// objects on their way in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_modifier: Option<ResourceModifierRef>,
    /// Init containers added to restored pods and commands run in them once they run.
    #[serde(default, skip_serializing_if = "crate::hooks::RestoreHooks::is_empty")]
    pub hooks: crate::hooks::RestoreHooks,
}

/// A Restore object's phase (Velero's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreObjectPhase {
    /// Waiting for the server.
    #[default]
    New,
    /// The spec cannot be run; see `validationErrors`.
    FailedValidation,
    /// Running.
    InProgress,
    /// Every selected object was restored, found unchanged, or skipped by policy.
    Completed,
    /// Some objects failed.
    PartiallyFailed,
    /// The restore could not run; see `failureReason`.
    Failed,
}

impl RestoreObjectPhase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreObjectPhase::New => "New",
            RestoreObjectPhase::FailedValidation => "FailedValidation",
            RestoreObjectPhase::InProgress => "InProgress",
            RestoreObjectPhase::Completed => "Completed",
            RestoreObjectPhase::PartiallyFailed => "PartiallyFailed",
            RestoreObjectPhase::Failed => "Failed",
        }
    }
}

/// Object counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObjectProgress {
    /// Objects selected from the backup.
    #[serde(default)]
    pub total_items: u64,
    /// Objects decided so far.
    #[serde(default)]
    pub items_restored: u64,
}

/// Where a Restore object stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObjectStatus {
    /// The phase; absent means New.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestoreObjectPhase>,
    /// Why the spec cannot be run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// Counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RestoreObjectProgress>,
    /// Number of warnings.
    #[serde(default)]
    pub warnings: u64,
    /// Number of errors.
    #[serde(default)]
    pub errors: u64,
    /// Why the restore failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl Restore {
    /// The phase; New when the server has not seen it yet.
    pub fn phase(&self) -> RestoreObjectPhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
    }
}

/// The ConfigMap holding a restore's resource modifiers (Velero's `TypedLocalObjectReference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceModifierRef {
    /// Ignored; the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// `ConfigMap` (any case).
    pub kind: String,
    /// The ConfigMap's name.
    pub name: String,
}
