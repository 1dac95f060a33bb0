//! Garbage collection, every `--garbage-collection-frequency`: an expired backup gets a DeleteBackupRequest,
//! unless its location is missing, unreadable or read-only; then it keeps a `cairn.dev/gc-failure` label
//! naming why, and is retried at the next run.

use std::{sync::Arc, time::Duration};

use cairn_api::{Backup, DeleteBackupRequest, DeleteBackupRequestSpec, RequestPhase, labels};
use jiff::Timestamp;
use kube::{
    ResourceExt,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use backup_core::backup::retention::{self, LocationState};
use cairn_kube::names::label_value;

use super::{KubeContext, ReconcileError};
use crate::{
    context::Context,
    locations::{self, LocationProblem},
};

/// Runs until `shutdown` resolves.
pub(crate) async fn run(context: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        if let Err(error) = super::guarded("garbage collection".into(), collect(&context)).await {
            tracing::warn!("garbage collection: {error}");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(context.settings.gc_frequency.max(Duration::from_millis(100))) => {}
        }
    }
}

/// One garbage collection run.
pub(crate) async fn collect(context: &Context) -> Result<(), ReconcileError> {
    let backups = context.api::<Backup>();
    let now = Timestamp::now();
    for backup in backups.list(&Default::default()).await.doing(|| "listing backups".into())?.items {
        let expiration = backup.status.as_ref().and_then(|s| s.expiration.as_ref()).map(|e| e.0);
        // Velero collects its own backups.
        if !retention::is_due(expiration, backup.phase(), now)
            || backup_core::backup::deletion::is_velero_backup(&backup)
        {
            continue;
        }
        let name = backup.name_any();
        let state = match locations::open(context, &backup.spec.storage_location).await {
            Err(LocationProblem::NotFound(_)) => LocationState::Missing,
            Err(_) => LocationState::Unreachable,
            Ok(location) if location.object.is_read_only() => LocationState::ReadOnly,
            Ok(location) if location.store.check_reachable().await.is_err() => LocationState::Unreachable,
            Ok(_) => LocationState::Writable,
        };
        let failure = retention::gc_failure(state);
        let current = backup.labels().get(labels::GC_FAILURE).map(String::as_str);
        if current != failure {
            let patch = json!({ "metadata": { "labels": { labels::GC_FAILURE: failure } } });
            backups
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .doing(|| format!("labelling backup {name}"))?;
        }
        match failure {
            Some(reason) => tracing::info!(backup = %name, "expired but kept: {reason}"),
            None => request_deletion(context, &backup).await?,
        }
    }
    Ok(())
}

/// Creates a DeleteBackupRequest for `backup` unless an unprocessed one exists.
async fn request_deletion(context: &Context, backup: &Backup) -> Result<(), ReconcileError> {
    let name = backup.name_any();
    let requests = context.api::<DeleteBackupRequest>();
    let selector = format!("{}={}", labels::BACKUP_NAME, label_value(&name));
    let pending =
        requests.list(&ListParams::default().labels(&selector)).await.doing(|| "listing delete requests".into())?;
    if pending.items.iter().any(|r| r.status.as_ref().and_then(|s| s.phase) != Some(RequestPhase::Processed)) {
        return Ok(());
    }
    let request = DeleteBackupRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            labels: Some(
                [
                    (labels::BACKUP_NAME.to_owned(), label_value(&name)),
                    (labels::BACKUP_UID.to_owned(), backup.uid().unwrap_or_default()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: DeleteBackupRequestSpec { backup_name: name.clone() },
        status: None,
    };
    requests
        .create(&PostParams::default(), &request)
        .await
        .doing(|| format!("requesting deletion of backup {name}"))?;
    tracing::info!(backup = %name, "expired: deletion requested");
    Ok(())
}
