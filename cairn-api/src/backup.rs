//! The Backup resource: what to back up (shared with the stored record) and where it stands in the cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Compression, SelectionSpec};

/// The TTL of a backup that names none (Velero's): 30 days.
pub const DEFAULT_TTL: &str = "720h0m0s";

/// What to back up and how. Stored in the record as given; on a server the Backup object's spec.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "Backup",
    namespaced,
    status = "BackupObjectStatus",
    shortname = "bk",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.errors"}"#,
    printcolumn = r#"{"name":"Warnings","type":"integer","jsonPath":".status.warnings"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".status.expiration"}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".spec.storageLocation"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Which objects.
    #[serde(flatten)]
    pub selection: SelectionSpec,
    /// How long the backup is kept, as a Go duration (`72h`, `90m`); empty: the server's
    /// `--default-backup-ttl`, 720h0m0s unless set otherwise.
    #[serde(default)]
    #[schemars(pattern(super::OPTIONAL_DURATION_PATTERN))]
    pub ttl: String,
    /// The storage location: a BackupStorageLocation's name on a server (empty: the default location), the
    /// location's URL in a standalone backup's record.
    #[serde(default)]
    pub storage_location: String,
    /// The archive's compression: `zstd` (the default) or `gzip` (Velero's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// `velero` also writes the backup in Velero's bucket layout (gzip only), for Velero to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::compression::BackupFormat>,
    /// Commands run in selected pods before and after the backup reads the cluster.
    #[serde(default, skip_serializing_if = "crate::hooks::BackupHooks::is_empty")]
    pub hooks: crate::hooks::BackupHooks,
}

/// A Backup object's phase (Velero's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupPhase {
    /// Waiting for the server.
    #[default]
    New,
    /// The spec cannot be run; see `validationErrors`.
    FailedValidation,
    /// Running.
    InProgress,
    /// Every selected object was saved.
    Completed,
    /// Saved, but some objects or types failed.
    PartiallyFailed,
    /// Nothing usable was saved; see `failureReason`.
    Failed,
    /// Being deleted with its stored data.
    Deleting,
}

impl BackupPhase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupPhase::New => "New",
            BackupPhase::FailedValidation => "FailedValidation",
            BackupPhase::InProgress => "InProgress",
            BackupPhase::Completed => "Completed",
            BackupPhase::PartiallyFailed => "PartiallyFailed",
            BackupPhase::Failed => "Failed",
            BackupPhase::Deleting => "Deleting",
        }
    }

    /// Whether the backup is finished with data that can be restored.
    pub fn is_restorable(self) -> bool {
        matches!(self, BackupPhase::Completed | BackupPhase::PartiallyFailed)
    }

    /// Whether the backup is waiting or running.
    pub fn is_active(self) -> bool {
        matches!(self, BackupPhase::New | BackupPhase::InProgress)
    }
}

/// Object counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupObjectProgress {
    /// Objects selected so far.
    #[serde(default)]
    pub total_items: u64,
    /// Objects written to the archive.
    #[serde(default)]
    pub items_backed_up: u64,
}

/// Where a Backup object stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupObjectStatus {
    /// The phase; absent means New.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// Why the spec cannot be run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
    /// The Cairn version that wrote the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The archive format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// When garbage collection may delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// Counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<BackupObjectProgress>,
    /// Number of warnings.
    #[serde(default)]
    pub warnings: u64,
    /// Number of errors.
    #[serde(default)]
    pub errors: u64,
    /// Why the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl Backup {
    /// The phase; New when the server has not seen it yet.
    pub fn phase(&self) -> BackupPhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
    }
}
