//! The one-shot requests a Cairn server answers: its version (ServerStatusRequest), a link to a backup's or
//! restore's file (DownloadRequest), and the deletion of a backup (DeleteBackupRequest). Answered requests
//! are deleted again; a deletion request is left for the server, which works through it on its own time.

use std::{collections::BTreeMap, time::Duration};

use kube::{ResourceExt, api::ObjectMeta};
use serde::Serialize;

use super::{CairnObject, ClientError, ServerApi};
use cairn_api::{
    Backup, DeleteBackupRequest, DeleteBackupRequestSpec, DownloadRequest, DownloadRequestSpec, DownloadTarget,
    DownloadTargetKind, RequestPhase, ServerStatusRequest, ServerStatusRequestSpec, labels,
};
use cairn_kube::names::label_value;

/// How often an outstanding request is looked at.
const POLL: Duration = Duration::from_millis(250);

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerStatus {
    /// The server's version.
    pub version: String,
    /// Its plugins (Cairn has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

impl ServerApi {
    /// Asks the server for its version: creates a ServerStatusRequest, waits up to `timeout` for it to be
    /// processed, and deletes it. No answer is [`ClientError::NoServer`].
    pub(crate) async fn server_status(&self, timeout: Duration) -> Result<ServerStatus, ClientError> {
        let request = ServerStatusRequest {
            metadata: ObjectMeta { generate_name: Some("cairn-".into()), ..ObjectMeta::default() },
            spec: ServerStatusRequestSpec {},
            status: None,
        };
        let answered =
            |r: &ServerStatusRequest| r.status.as_ref().and_then(|s| s.phase) == Some(RequestPhase::Processed);
        let answer = match self.ask(&request, timeout, answered).await {
            Err(ClientError::NoAnswer { namespace, timeout, .. }) => {
                return Err(ClientError::NoServer { namespace, timeout });
            }
            other => other?,
        };
        let status = answer.status.unwrap_or_default();
        Ok(ServerStatus { version: status.server_version.unwrap_or_default(), plugins: status.plugins })
    }

    /// A link to one of a backup's or restore's files: an `http(s)://` presigned URL or a `file://` URL. Creates a
    /// DownloadRequest, waits up to `timeout` for the server's answer, and deletes it.
    pub(crate) async fn download_link(
        &self,
        kind: DownloadTargetKind,
        name: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let request = DownloadRequest {
            metadata: ObjectMeta { generate_name: Some(generate_name(name)), ..ObjectMeta::default() },
            spec: DownloadRequestSpec { target: DownloadTarget { kind, name: name.to_owned() } },
            status: None,
        };
        let answered = |r: &DownloadRequest| r.status.as_ref().and_then(|s| s.phase) == Some(RequestPhase::Processed);
        let status = self.ask(&request, timeout, answered).await?.status.unwrap_or_default();
        let file = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        match (status.download_url, status.error) {
            (Some(url), None) if !url.is_empty() => Ok(url),
            (_, error) => Err(ClientError::Download {
                file,
                name: name.to_owned(),
                reason: error.unwrap_or_else(|| "the server gave no link and no reason".into()),
            }),
        }
    }

    /// Asks the server to delete `backup` (its stored data, the restores made from it, then the object):
    /// creates a DeleteBackupRequest named `<backup>-<random>` and labelled with the backup's name and uid.
    /// Returns the request as created; the server processes it on its own time.
    pub(crate) async fn request_backup_deletion(&self, backup: &Backup) -> Result<DeleteBackupRequest, ClientError> {
        let name = backup.name_any();
        let mut request_labels = BTreeMap::from([(labels::BACKUP_NAME.to_owned(), label_value(&name))]);
        if let Some(uid) = backup.uid() {
            request_labels.insert(labels::BACKUP_UID.to_owned(), uid);
        }
        let request = DeleteBackupRequest {
            metadata: ObjectMeta {
                generate_name: Some(generate_name(&name)),
                labels: Some(request_labels),
                ..ObjectMeta::default()
            },
            spec: DeleteBackupRequestSpec { backup_name: name },
            status: None,
        };
        self.create(&request).await
    }

    /// The DeleteBackupRequests made for the backup `backup` (labelled with its name), oldest first: its
    /// deletion attempts, with their phase and errors.
    pub(crate) async fn deletion_attempts(&self, backup: &str) -> Result<Vec<DeleteBackupRequest>, ClientError> {
        let selector = format!("{}={}", labels::BACKUP_NAME, label_value(backup));
        let mut requests: Vec<DeleteBackupRequest> = self.list_selected(Some(&selector)).await?;
        requests.retain(|r| r.spec.backup_name == backup);
        requests.sort_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0));
        Ok(requests)
    }

    /// Creates `request`, follows it until `answered` or `timeout`, and deletes it whatever happened.
    async fn ask<K: CairnObject>(
        &self,
        request: &K,
        timeout: Duration,
        answered: impl FnMut(&K) -> bool,
    ) -> Result<K, ClientError> {
        let created = self.create(request).await?;
        let name = created.name_any();
        let answer = match self.follow(&name, POLL, Some(timeout), answered).await {
            Err(ClientError::TimedOut { kind, namespace, timeout, .. }) => {
                Err(ClientError::NoAnswer { request: kind, namespace, timeout })
            }
            other => other,
        };
        // Best effort: a request left behind is harmless, and the server removes old ones.
        let _ = self.delete::<K>(&name).await;
        answer
    }
}

/// `generateName` for a request about `name`: `<name>-`, which the API server completes with five random
/// characters (and shortens when needed).
fn generate_name(name: &str) -> String {
    format!("{name}-")
}
