//! The BackupStorageLocation resource: a bucket (and prefix) or a directory, its credentials, and whether
//! it may be written.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where backups are stored, as a server knows it.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "BackupStorageLocation",
    namespaced,
    status = "BackupStorageLocationStatus",
    shortname = "bsl",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Last Validated","type":"date","jsonPath":".status.lastValidationTime"}"#,
    printcolumn = r#"{"name":"Access Mode","type":"string","jsonPath":".spec.accessMode"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationSpec {
    /// `aws` for AWS S3 or any S3-compatible server, `local` for a directory on the server's file system.
    #[schemars(pattern(r"^(aws|local)$"))]
    pub provider: String,
    /// The bucket (for `local`: the absolute directory) and prefix.
    pub object_storage: ObjectStorage,
    /// Provider settings. `aws`: `region`, `s3Url` (the endpoint of an S3-compatible server), `profile` (in
    /// the credentials file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// A Secret key holding an AWS credentials file (`[default]` with `aws_access_key_id` and
    /// `aws_secret_access_key`); absent: the server's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SecretKeySelector>,
    /// The location backups go to when they name none.
    #[serde(default)]
    pub default: bool,
    /// `ReadOnly` refuses new backups and deletions; restores and sync still work.
    #[serde(default)]
    pub access_mode: AccessMode,
    /// How often the bucket is synchronised with the cluster (Go duration; `0s` disables; default: the
    /// server's `--backup-sync-period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::DURATION_PATTERN))]
    pub backup_sync_period: Option<String>,
    /// How often availability is checked (Go duration; default: the server's
    /// `--store-validation-frequency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::DURATION_PATTERN))]
    pub validation_frequency: Option<String>,
    /// The layout backups written here get when they name none: `velero` also writes each one in Velero's
    /// layout (gzip), so a Velero server pointed at the bucket syncs and restores it; absent or `cairn`:
    /// Cairn's only. A backup's own `format` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_format: Option<crate::BackupFormat>,
}

/// The bucket and prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorage {
    /// The bucket (for `local`: the absolute directory).
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A PEM bundle to trust for the server's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// A key of a Secret in the server's namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
}

/// Whether a location may be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccessMode {
    /// Backups and deletions allowed.
    #[default]
    ReadWrite,
    /// Only reads: restores and sync.
    ReadOnly,
}

/// Whether a location answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LocationPhase {
    /// The last check reached it.
    Available,
    /// The last check failed; see the message.
    Unavailable,
}

/// Where a location stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationStatus {
    /// Available or Unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LocationPhase>,
    /// Why it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the bucket was last synchronised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_time: Option<Time>,
    /// When availability was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation_time: Option<Time>,
}

impl BackupStorageLocation {
    /// Whether the location refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.spec.access_mode == AccessMode::ReadOnly
    }

    /// Whether the last check found it available.
    pub fn is_available(&self) -> bool {
        self.status.as_ref().and_then(|s| s.phase) == Some(LocationPhase::Available)
    }
}
