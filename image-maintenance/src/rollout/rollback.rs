//! `image rollback`: the workload's pod template set back to a kept revision (the previous one unless named),
//! the cause recorded, then the rollout waited for as `kubectl rollout status` does. Which revision and the
//! patch that restores it are decided without I/O ([`choose`], [`restore_patch`]).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::wait::await_condition,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    CHANGE_CAUSE,
    history::{Revision, history},
    target::{Target, WorkloadKind},
};
use crate::ImageError;

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    /// The revision running before.
    pub from: Option<i64>,
    /// The revision restored.
    pub to: i64,
    /// Its images.
    pub images: Vec<String>,
    /// Whether the rollout finished (false when not waited for).
    pub rolled_out: bool,
}

/// The revision to go back to: `to`, or the newest before the current one. Refuses a revision that is not
/// kept, and the one already running.
pub fn choose(revisions: &[Revision], to: Option<i64>) -> Result<&Revision, ImageError> {
    let current = revisions.iter().find(|r| r.current).map(|r| r.revision);
    let kept = || revisions.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", ");
    let chosen = match to {
        Some(number) => revisions.iter().find(|r| r.revision == number).ok_or_else(|| {
            ImageError::Invalid(format!("revision {number} is not kept; the kept revisions are {}", kept()))
        })?,
        None => revisions.iter().rev().find(|r| Some(r.revision) != current && Some(r.revision) < current).ok_or_else(
            || {
                ImageError::Invalid(format!(
                    "there is no revision before the current one to go back to (kept: {})",
                    kept()
                ))
            },
        )?,
    };
    if Some(chosen.revision) == current {
        return Err(ImageError::Invalid(format!("revision {} is already the current one", chosen.revision)));
    }
    Ok(chosen)
}

/// The strategic merge patch that puts `revision`'s pod template back, with `cause` recorded.
pub fn restore_patch(kind: WorkloadKind, revision: &Revision, cause: &str) -> Value {
    let mut patch = match kind {
        WorkloadKind::Deployment => {
            let mut template = revision.restore.clone();
            // The ReplicaSet's own label: the Deployment controller adds it again.
            if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
                labels.remove("pod-template-hash");
            }
            template["$patch"] = json!("replace");
            json!({"spec": {"template": template}})
        }
        // A ControllerRevision's data is already the patch that restores it.
        WorkloadKind::DaemonSet | WorkloadKind::StatefulSet => revision.restore.clone(),
    };
    patch["metadata"] = json!({"annotations": {CHANGE_CAUSE: cause}});
    patch
}

/// Rolls `target` back to `to` (default: the previous revision), then waits up to `timeout` for the
/// rollout (not at all when None).
pub async fn rollback(
    client: &Client,
    target: &Target,
    to: Option<i64>,
    timeout: Option<Duration>,
) -> Result<RolledBack, ImageError> {
    let revisions = history(client, target).await?;
    let chosen = choose(&revisions, to)?;
    let from = revisions.iter().find(|r| r.current).map(|r| r.revision);
    let cause = match &chosen.cause {
        Some(cause) => format!("rollback to revision {} ({cause})", chosen.revision),
        None => format!("rollback to revision {}", chosen.revision),
    };
    target.patch(client, &restore_patch(target.kind, chosen, &cause)).await?;
    if target.kind != WorkloadKind::Deployment {
        // The DaemonSet and StatefulSet controllers take the old ControllerRevision back under a new number
        // but keep its annotations: the cause is recorded on it here, as the Deployment controller does on
        // the ReplicaSet it takes back.
        let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &target.namespace);
        let patch = json!({"metadata": {"annotations": {CHANGE_CAUSE: cause}}});
        revisions.patch(&chosen.kept_in, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| {
            ImageError::kube(format!("recording the cause on ControllerRevision {}", chosen.kept_in), e)
        })?;
    }
    let rolled_out = match timeout {
        None => false,
        Some(limit) => {
            tokio::time::timeout(limit, wait_rolled_out(client, target)).await.map_err(|_| {
                ImageError::Invalid(format!(
                    "{target} was set back to revision {} but its rollout did not finish within {} s; see `kubectl rollout status {target} -n {}`",
                    chosen.revision,
                    limit.as_secs(),
                    target.namespace
                ))
            })??;
            true
        }
    };
    Ok(RolledBack { from, to: chosen.revision, images: chosen.images.clone(), rolled_out })
}

/// Whether a Deployment's rollout is complete (kubectl rollout status's test).
pub fn deployment_rolled_out(d: &Deployment) -> bool {
    let (spec, Some(status)) = (&d.spec, &d.status) else { return false };
    let wanted = spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0)
        && status.available_replicas.unwrap_or(0) >= status.updated_replicas.unwrap_or(0)
}

/// Whether a DaemonSet's rollout is complete.
pub fn daemonset_rolled_out(d: &DaemonSet) -> bool {
    let Some(status) = &d.status else { return false };
    status.observed_generation >= d.metadata.generation
        && status.updated_number_scheduled.unwrap_or(0) >= status.desired_number_scheduled
        && status.number_available.unwrap_or(0) >= status.desired_number_scheduled
}

/// Whether a StatefulSet's rollout is complete.
pub fn statefulset_rolled_out(s: &StatefulSet) -> bool {
    let (spec, Some(status)) = (&s.spec, &s.status) else { return false };
    let wanted = spec.replicas.unwrap_or(1);
    status.observed_generation >= s.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.ready_replicas.unwrap_or(0) >= wanted
        && status.update_revision.is_some()
        && status.current_revision == status.update_revision
}

async fn wait_rolled_out(client: &Client, target: &Target) -> Result<(), ImageError> {
    let name = target.name.as_str();
    let waited = match target.kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
            await_condition(api, name, |d: Option<&Deployment>| d.is_some_and(deployment_rolled_out)).await.map(drop)
        }
        WorkloadKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), &target.namespace);
            await_condition(api, name, |d: Option<&DaemonSet>| d.is_some_and(daemonset_rolled_out)).await.map(drop)
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &target.namespace);
            await_condition(api, name, |s: Option<&StatefulSet>| s.is_some_and(statefulset_rolled_out)).await.map(drop)
        }
    };
    waited.map_err(|e| ImageError::Invalid(format!("watching the rollout of {target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(number: i64, current: bool) -> Revision {
        Revision {
            revision: number,
            kept_in: format!("web-{number}"),
            images: vec![format!("app=app:v{number}")],
            cause: None,
            created: None,
            current,
            restore: json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"containers": []}}),
        }
    }

    #[test]
    fn the_previous_revision_is_chosen_unless_one_is_named() {
        let kept = [revision(1, false), revision(2, false), revision(3, true)];
        assert_eq!(choose(&kept, None).unwrap().revision, 2);
        assert_eq!(choose(&kept, Some(1)).unwrap().revision, 1);
        assert!(choose(&kept, Some(3)).unwrap_err().to_string().contains("already the current one"));
        assert!(choose(&kept, Some(9)).unwrap_err().to_string().contains("kept revisions are 1, 2, 3"));
        assert!(choose(&[revision(1, true)], None).unwrap_err().to_string().contains("no revision before"));
    }

    #[test]
    fn a_deployment_patch_replaces_the_template_without_the_replicaset_hash() {
        let patch = restore_patch(WorkloadKind::Deployment, &revision(2, false), "rollback to revision 2");
        assert_eq!(patch["spec"]["template"]["$patch"], "replace");
        assert_eq!(patch["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(patch["metadata"]["annotations"][CHANGE_CAUSE], "rollback to revision 2");
    }
}
