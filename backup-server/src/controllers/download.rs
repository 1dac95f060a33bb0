//! DownloadRequests: a link to one file of a backup or restore (presigned on S3, `file://` for a local
//! location), valid ten minutes; the request is removed when its link expires.

use cairn_api::{Backup, DownloadRequest, DownloadTargetKind, RequestPhase, Restore};
use std::{sync::Arc, time::Duration};

use backup_core::{
    backup::{backup_keys, read_backup},
    store::Layout,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::controller::Action,
};
use object_store::path::Path;
use serde_json::json;

use super::{KubeContext, ReconcileError, absent_ok};
use crate::{context::Context, locations};

/// How long a link works.
const VALID_FOR: Duration = Duration::from_secs(600);

/// Reconciles one DownloadRequest.
pub(crate) async fn reconcile(request: Arc<DownloadRequest>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<DownloadRequest>();
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    if status.phase == Some(RequestPhase::Processed) {
        let expires = status.expiration.map(|t| t.0).unwrap_or_else(Timestamp::now);
        let left = expires.duration_since(Timestamp::now());
        if left <= SignedDuration::ZERO {
            absent_ok(api.delete(&name, &DeleteParams::default()).await).doing(|| format!("removing {name}"))?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Duration::from_secs(left.as_secs().max(1) as u64)));
    }
    let expiration = Timestamp::now() + SignedDuration::try_from(VALID_FOR).expect("ten minutes fit");
    let answer = match link(&context, &request).await? {
        Ok(url) => json!({ "phase": RequestPhase::Processed, "downloadURL": url, "expiration": Time(expiration) }),
        Err(error) => json!({ "phase": RequestPhase::Processed, "error": error, "expiration": Time(expiration) }),
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": answer })))
        .await
        .doing(|| format!("answering download request {name}"))?;
    Ok(Action::requeue(VALID_FOR))
}

/// The link, or why there is none.
async fn link(context: &Context, request: &DownloadRequest) -> Result<Result<String, String>, ReconcileError> {
    let target = &request.spec.target;
    let restore_kind = matches!(
        target.kind,
        DownloadTargetKind::RestoreLog | DownloadTargetKind::RestoreResults | DownloadTargetKind::RestoreResourceList
    );
    let backup_name = if restore_kind {
        match context
            .api::<Restore>()
            .get_opt(&target.name)
            .await
            .doing(|| format!("reading restore {}", target.name))?
        {
            Some(restore) => restore.spec.backup_name,
            None => {
                return Ok(Err(format!("restore {} does not exist in namespace {}", target.name, context.namespace)));
            }
        }
    } else {
        target.name.clone()
    };
    let Some(backup) =
        context.api::<Backup>().get_opt(&backup_name).await.doing(|| format!("reading backup {backup_name}"))?
    else {
        return Ok(Err(format!("backup {backup_name} does not exist in namespace {}", context.namespace)));
    };
    let location = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => location,
        Err(problem) => return Ok(Err(problem.to_string())),
    };
    let key: Path = if restore_kind {
        let keys = Layout.restore_keys(&target.name);
        match target.kind {
            DownloadTargetKind::RestoreLog => keys.log,
            DownloadTargetKind::RestoreResults => keys.results,
            _ => keys.resource_list,
        }
    } else {
        let record = match read_backup(&location.store, &backup_name).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(Err(format!("backup {backup_name} has no record in location {}", location.name()))),
            Err(error) => return Ok(Err(error.to_string())),
        };
        let keys = backup_keys(&record);
        match target.kind {
            DownloadTargetKind::BackupLog => keys.log,
            DownloadTargetKind::BackupContents => keys.archive,
            DownloadTargetKind::BackupResults => keys.results,
            _ => keys.resource_list,
        }
    };
    Ok(location.store.download_url(&key, VALID_FOR).await.map_err(|e| e.to_string()))
}
