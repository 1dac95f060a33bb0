//! ServerStatusRequests: answered with the server's version (what `cairn version` prints), then removed a
//! minute later.

use std::{sync::Arc, time::Duration};

use cairn_api::{RequestPhase, ServerStatusRequest};
use jiff::{Timestamp, ToSpan};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use super::{KubeContext, ReconcileError, absent_ok};
use crate::context::Context;

/// How long an answered request is kept.
const KEEP: Duration = Duration::from_secs(60);

/// Reconciles one ServerStatusRequest.
pub(crate) async fn reconcile(
    request: Arc<ServerStatusRequest>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api = context.api::<ServerStatusRequest>();
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    if status.phase == Some(RequestPhase::Processed) {
        let processed = status.processed_timestamp.map(|t| t.0).unwrap_or_else(Timestamp::now);
        if processed + 60.seconds() <= Timestamp::now() {
            absent_ok(api.delete(&name, &DeleteParams::default()).await).doing(|| format!("removing {name}"))?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(KEEP));
    }
    let answer = json!({ "status": {
        "phase": RequestPhase::Processed,
        "processedTimestamp": Time(Timestamp::now()),
        "serverVersion": backup_core::VERSION,
    } });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(answer))
        .await
        .doing(|| format!("answering server status request {name}"))?;
    Ok(Action::requeue(KEEP))
}
