//! The backup record (`cairn-backup.json`): a Backup object in the shape of `cairn.dev/v1`, field names as in
//! Velero's `velero.io/v1` Backup, plus what Cairn adds (the archive's checksums, the run id).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use cairn_api::BackupSpec;
use cairn_api::{BackupObjectProgress, BackupObjectStatus, BackupPhase, Compression, RecordMeta};
use cairn_kube::report::Problem;

use crate::archive::ArchiveSummary;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A backup's lifecycle phase (Velero's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Running.
    InProgress,
    /// Every selected object was saved.
    Completed,
    /// Saved, but some objects or types failed (see the errors).
    PartiallyFailed,
    /// Nothing usable was saved (see the failure reason).
    Failed,
}

impl Phase {
    /// The phase as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::PartiallyFailed => "PartiallyFailed",
            Phase::Failed => "Failed",
        }
    }
}

/// Object counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Objects selected.
    pub total_items: u64,
    /// Objects written to the archive.
    pub items_backed_up: u64,
}

/// Where a backup stands and what it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The phase.
    pub phase: Phase,
    /// The archive format version.
    pub format_version: String,
    /// The Cairn version that wrote the backup.
    pub cairn_version: String,
    /// Identifies this attempt's files (see `store::Layout::backup_keys`).
    pub run: String,
    /// When the backup started.
    pub start_timestamp: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Timestamp>,
    /// When it may be garbage-collected: start + TTL.
    pub expiration: Timestamp,
    /// Counts.
    pub progress: Progress,
    /// Number of warnings.
    pub warnings: u64,
    /// Number of errors.
    pub errors: u64,
    /// Why the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The archive's size and checksums (absent when it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveSummary>,
}

/// The stored record of one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Always [`cairn_api::API_VERSION`].
    pub api_version: String,
    /// Always `Backup`.
    pub kind: String,
    /// Name and labels.
    pub metadata: RecordMeta,
    /// What was asked for.
    pub spec: BackupSpec,
    /// What happened.
    pub status: BackupStatus,
}

impl BackupRecord {
    /// The backup's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Whether the Backup object with `uid` wrote this record (the server labels records with the object's
    /// uid): another cluster's backup of the same name, or a standalone one, was not.
    pub fn is_written_by(&self, uid: &str) -> bool {
        self.metadata.labels.get(cairn_api::labels::BACKUP_UID).is_some_and(|written_by| written_by == uid)
    }

    /// The archive's compression.
    pub fn compression(&self) -> Compression {
        self.spec.compression.unwrap_or(Compression::Zstd)
    }
}

/// The results file: counts per type, warnings and errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResults {
    /// Objects saved per resource type (`group-resource`).
    pub counts: BTreeMap<String, u64>,
    /// Warnings: something was left out but the backup is usable.
    pub warnings: Vec<Problem>,
    /// Errors: something selected could not be saved.
    pub errors: Vec<Problem>,
    /// The container images the backed-up workloads name, as written in them (absent in backups made before
    /// Cairn recorded them).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub images: BTreeSet<String>,
    /// Every hook the backup ran or skipped, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<super::HookRun>,
}

impl From<Phase> for BackupPhase {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::InProgress => BackupPhase::InProgress,
            Phase::Completed => BackupPhase::Completed,
            Phase::PartiallyFailed => BackupPhase::PartiallyFailed,
            Phase::Failed => BackupPhase::Failed,
        }
    }
}

impl BackupStatus {
    /// The Backup object status this record status describes (how sync shows a backup found in the bucket).
    pub fn object_status(&self) -> BackupObjectStatus {
        let status = self;
        BackupObjectStatus {
            phase: Some(status.phase.into()),
            validation_errors: Vec::new(),
            version: Some(status.cairn_version.clone()),
            format_version: Some(status.format_version.clone()),
            start_timestamp: Some(Time(status.start_timestamp)),
            completion_timestamp: status.completion_timestamp.map(Time),
            expiration: Some(Time(status.expiration)),
            progress: Some(BackupObjectProgress {
                total_items: status.progress.total_items,
                items_backed_up: status.progress.items_backed_up,
            }),
            warnings: status.warnings,
            errors: status.errors,
            failure_reason: status.failure_reason.clone(),
        }
    }
}
