//! Waiting for an installed server as `kubectl rollout status` would: until every pod of the Deployment's
//! current template is available. A pod of that template that cannot start (an image that cannot be pulled,
//! a container that keeps crashing, a missing Secret) ends the wait at once, with the pod's reason and its
//! last log lines; pods of an older template, still running while a new one rolls out, are not judged.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::Pod,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, LogParams},
};

use super::{InstallError, SERVER_NAME};
use cairn_kube::errors::describe;

/// How often the Deployment and its pods are looked at.
const POLL: Duration = Duration::from_secs(2);
/// How many log lines a failure shows.
const LOG_LINES: i64 = 20;
/// Waiting reasons that mean the container will not start without a change: the kubelet has retried and
/// backs off, or cannot proceed at all.
const STUCK: [&str; 8] = [
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];
/// The annotation a Deployment and its ReplicaSets carry their revision in.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Waits until the server's Deployment in `namespace` has rolled out: every replica of its current template
/// available. Fails early when a pod of that template cannot start, and after `timeout` with what each pod
/// is waiting for.
pub async fn wait_until_available(client: &Client, namespace: &str, timeout: Duration) -> Result<(), InstallError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    let pods = loop {
        let watch_error = |error: kube::Error| InstallError::Watch {
            what: format!("Deployment {namespace}/{SERVER_NAME}"),
            problem: describe(&error),
        };
        let deployment = deployments.get(SERVER_NAME).await.map_err(watch_error)?;
        if rolled_out(&deployment) {
            return Ok(());
        }
        let pods = current_pods(client, namespace, &deployment).await.map_err(watch_error)?;
        if let Some((pod, stuck)) = pods.iter().find_map(|pod| stuck(pod).map(|s| (pod, s))) {
            return Err(cannot_start(client, namespace, pod, stuck).await);
        }
        if tokio::time::Instant::now() + POLL > deadline {
            break pods;
        }
        tokio::time::sleep(POLL).await;
    };
    let pods = if pods.is_empty() {
        "no pod of its current version exists yet".to_owned()
    } else {
        pods.iter().map(waiting_for).collect::<Vec<_>>().join("; ")
    };
    Err(InstallError::NotAvailable { namespace: namespace.to_owned(), seconds: timeout.as_secs(), pods })
}

/// Whether every replica of the current template is updated and available, and no older one is left.
fn rolled_out(deployment: &Deployment) -> bool {
    let Some(status) = &deployment.status else { return false };
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
        && updated >= wanted
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= wanted
}

/// The pods of the Deployment's current template: those of the ReplicaSet with the Deployment's revision.
async fn current_pods(client: &Client, namespace: &str, deployment: &Deployment) -> Result<Vec<Pod>, kube::Error> {
    let Some(revision) = deployment.annotations().get(REVISION) else { return Ok(Vec::new()) };
    let selector = server_selector(deployment);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let sets = sets.list(&ListParams::default().labels(&selector)).await?;
    let current = sets.items.iter().find(|set| {
        set.annotations().get(REVISION) == Some(revision)
            && set.owner_references().iter().any(|owner| owner.uid == deployment.uid().unwrap_or_default())
    });
    let Some(hash) = current.and_then(|set| set.labels().get("pod-template-hash")) else { return Ok(Vec::new()) };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("{selector},pod-template-hash={hash}"));
    Ok(pods.list(&params).await?.items)
}

/// The Deployment's pod selector as a label query.
fn server_selector(deployment: &Deployment) -> String {
    let labels = deployment.spec.selector.match_labels.clone().unwrap_or_default();
    labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

/// Why a pod's container will not start, when it will not: the container, its waiting reason and message,
/// and whether it ran before (so that its previous run's log explains it).
struct Stuck {
    container: String,
    reason: String,
    message: String,
    ran_before: bool,
}

fn stuck(pod: &Pod) -> Option<Stuck> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|status| {
        let waiting = status.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.clone().filter(|r| STUCK.contains(&r.as_str()))?;
        Some(Stuck {
            container: status.name.clone(),
            reason,
            message: waiting.message.clone().unwrap_or_default(),
            ran_before: status.restart_count > 0,
        })
    })
}

async fn cannot_start(client: &Client, namespace: &str, pod: &Pod, stuck: Stuck) -> InstallError {
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(stuck.container.clone()),
        previous: stuck.ran_before,
        tail_lines: Some(LOG_LINES),
        ..LogParams::default()
    };
    let log = match pods.logs(&name, &params).await {
        Ok(log) if !log.trim().is_empty() => {
            let lines: Vec<String> = log.trim_end().lines().map(|line| format!("  {line}")).collect();
            format!("\nits last log lines:\n{}", lines.join("\n"))
        }
        Ok(_) => String::new(),
        Err(_) if !stuck.ran_before => String::new(),
        Err(error) => format!("\n(its log could not be read: {})", describe(&error)),
    };
    let message = if stuck.message.is_empty() { String::new() } else { format!(": {}", stuck.message) };
    InstallError::ServerCannotStart {
        namespace: namespace.to_owned(),
        pod: name,
        problem: format!("{}{message}{log}", stuck.reason),
    }
}

/// What a pod is waiting for, in one phrase: its phase, why it is not scheduled, or which container is not
/// ready and why.
fn waiting_for(pod: &Pod) -> String {
    let name = pod.name_any();
    let Some(status) = &pod.status else { return format!("{name}: no status yet") };
    let unscheduled = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(condition) = unscheduled {
        return format!("{name} is not scheduled: {}", condition.message.as_deref().unwrap_or("no reason given"));
    }
    let container = status.container_statuses.iter().flatten().find(|c| !c.ready);
    match container {
        Some(container) => {
            let state = container.state.as_ref();
            let waiting = state.and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
            let running = state.is_some_and(|s| s.running.is_some());
            let why = waiting.unwrap_or_else(|| if running { "running, not ready".into() } else { "starting".into() });
            format!("{name}: container {} {why}", container.name)
        }
        None => format!("{name}: {}", status.phase.as_deref().unwrap_or("Pending")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "cairn-1"}, "status": status})).unwrap()
    }

    #[test]
    fn a_backing_off_container_is_stuck_and_a_first_pull_error_is_not() {
        let waiting = |reason: &str, restarts: i32| {
            pod(serde_json::json!({"containerStatuses": [{
                "name": "cairn-server", "ready": false, "restartCount": restarts, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": reason, "message": "why"}},
            }]}))
        };
        assert!(stuck(&waiting("ErrImagePull", 0)).is_none());
        assert!(stuck(&waiting("ContainerCreating", 0)).is_none());
        let backing_off = stuck(&waiting("ImagePullBackOff", 0)).unwrap();
        assert_eq!((backing_off.reason.as_str(), backing_off.ran_before), ("ImagePullBackOff", false));
        let crashing = stuck(&waiting("CrashLoopBackOff", 2)).unwrap();
        assert!(crashing.ran_before && crashing.container == "cairn-server" && crashing.message == "why");
    }

    #[test]
    fn a_waiting_pod_says_what_it_waits_for() {
        let unscheduled = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available: untolerated taint"},
        ]}));
        assert_eq!(waiting_for(&unscheduled), "cairn-1 is not scheduled: 0/1 nodes are available: untolerated taint");
        let unready = pod(serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "cairn-server", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"running": {}},
        }]}));
        assert_eq!(waiting_for(&unready), "cairn-1: container cairn-server running, not ready");
    }

    #[test]
    fn a_rollout_is_complete_when_every_current_replica_is_available_and_no_old_one_is_left() {
        let deployment = |generation: i64, status: serde_json::Value| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cairn", "generation": generation},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": status,
            }))
            .unwrap()
        };
        let done =
            serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(rolled_out(&deployment(2, done.clone())));
        assert!(!rolled_out(&deployment(3, done)), "the controller has not seen the new template yet");
        let old_still_available =
            serde_json::json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(!rolled_out(&deployment(2, old_still_available)));
    }
}
