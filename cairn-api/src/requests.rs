//! One-shot requests the server answers: delete a backup, report the server's version, hand out a download
//! link for a backup's or restore's files.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request's phase (Velero's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestPhase {
    /// Not yet seen by the server.
    #[default]
    New,
    /// Being worked on.
    InProgress,
    /// Answered (see the errors, if any).
    Processed,
}

/// Delete a backup: its stored data, the restores made from it, then the object.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "DeleteBackupRequest",
    namespaced,
    status = "DeleteBackupRequestStatus",
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.backupName"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBackupRequestSpec {
    /// The backup to delete.
    #[schemars(length(min = 1))]
    pub backup_name: String,
}

/// Where a deletion stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBackupRequestStatus {
    /// The phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RequestPhase>,
    /// What prevented the deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// When it was processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_timestamp: Option<Time>,
}

/// Ask the server for its version (what `cairn version` shows).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "ServerStatusRequest",
    namespaced,
    status = "ServerStatusRequestStatus",
    shortname = "ssr"
)]
pub struct ServerStatusRequestSpec {}

/// The server's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatusRequestStatus {
    /// New or Processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RequestPhase>,
    /// When it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_timestamp: Option<Time>,
    /// The server's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Plugins (Cairn has none; kept for Velero parity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

/// Ask for a link to one of a backup's or restore's files.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1",
    kind = "DownloadRequest",
    namespaced,
    status = "DownloadRequestStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.target.kind"}"#,
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.target.name"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRequestSpec {
    /// Which file.
    pub target: DownloadTarget,
}

/// A file of a backup or restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadTarget {
    /// Which kind of file.
    pub kind: DownloadTargetKind,
    /// The backup's or restore's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The files a DownloadRequest can name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DownloadTargetKind {
    /// The backup's log (gzip text).
    #[default]
    BackupLog,
    /// The archive.
    BackupContents,
    /// The list of archived objects (gzip JSON).
    BackupResourceList,
    /// Counts, warnings and errors (gzip JSON).
    BackupResults,
    /// The restore's log (gzip text).
    RestoreLog,
    /// Warnings and errors (gzip JSON).
    RestoreResults,
    /// Every object's outcome (gzip JSON).
    RestoreResourceList,
}

/// The server's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRequestStatus {
    /// New or Processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RequestPhase>,
    /// The link: a presigned URL on S3, a `file://` URL for a local location.
    #[serde(default, rename = "downloadURL", skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// When the link stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// Why there is no link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
