//! Running restored pods' exec hooks: each pod's hooks in order, pods side by side; each hook waits for its
//! container to run (and the pod to be Ready when it asks), then runs with its timeout.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use cairn_api::HookErrorMode;
use cairn_kube::exec::exec;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::resolve::ExecPlan;
use crate::backup::{HookOutcome, HookPhase, HookRun};

/// Pods whose hooks run at once.
const PARALLEL_PODS: usize = 8;
/// How often a pod is read while waiting for its container.
const POLL: Duration = Duration::from_secs(1);

/// A restored pod and its exec hooks.
#[derive(Debug, Clone)]
pub(crate) struct PodExecHooks {
    /// Its namespace (where it was restored to).
    pub(crate) namespace: String,
    /// Its name.
    pub(crate) pod: String,
    /// Its hooks, in order (stated rightly or not).
    pub(crate) hooks: Vec<Result<ExecPlan, String>>,
}

fn record(pod: &PodExecHooks, plan: Option<&ExecPlan>, outcome: HookOutcome, message: Option<String>) -> HookRun {
    HookRun {
        phase: HookPhase::Post,
        namespace: pod.namespace.clone(),
        pod: pod.pod.clone(),
        container: plan.map(|p| p.container.clone()).unwrap_or_default(),
        source: plan.map(|p| p.source.clone()).unwrap_or_default(),
        command: plan.map(|p| p.command.clone()).unwrap_or_default(),
        outcome,
        exit_code: None,
        duration_ms: 0,
        message,
        output: Vec::new(),
    }
}

/// Waits until `container` of the pod runs (and the pod is Ready with `ready`), for at most `timeout`.
async fn wait_for(pods: &Api<Pod>, name: &str, container: &str, ready: bool, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let state = match pods.get_opt(name).await {
            Ok(Some(pod)) => {
                let status = pod.status.unwrap_or_default();
                let phase = status.phase.clone().unwrap_or_default();
                if matches!(phase.as_str(), "Succeeded" | "Failed") {
                    return Err(format!("the pod ended ({phase}) before the hook could run"));
                }
                let running = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .any(|c| c.name == container && c.state.as_ref().is_some_and(|s| s.running.is_some()));
                let is_ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
                if running && (!ready || is_ready) {
                    return Ok(());
                }
                format!(
                    "container {container} {}",
                    if running { "runs but the pod is not Ready" } else { "is not running" }
                )
            }
            Ok(None) => "the pod does not exist".to_owned(),
            Err(error) => format!("reading the pod failed: {}", cairn_kube::errors::describe(&error)),
        };
        if started.elapsed() >= timeout {
            return Err(format!("waited {} (wait-timeout): {state}", cairn_kube::duration::format_duration(timeout)));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn run_one(client: &Client, pod: &PodExecHooks, plan: &ExecPlan) -> HookRun {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let waited = Instant::now();
    if let Err(problem) = wait_for(&pods, &pod.pod, &plan.container, plan.wait_for_ready, plan.wait_timeout).await {
        let mut run = record(pod, Some(plan), HookOutcome::Failed, Some(problem));
        run.duration_ms = waited.elapsed().as_millis() as u64;
        return run;
    }
    match exec(client, &pod.namespace, &pod.pod, &plan.container, &plan.command, plan.exec_timeout).await {
        Ok(outcome) => {
            let succeeded = outcome.succeeded();
            let message = outcome.problem();
            let outcome_kind = if succeeded { HookOutcome::Succeeded } else { HookOutcome::Failed };
            let mut run = record(pod, Some(plan), outcome_kind, message);
            run.exit_code = outcome.exit_code;
            run.duration_ms = outcome.duration.as_millis() as u64;
            run.output = outcome.output;
            run
        }
        Err(error) => record(
            pod,
            Some(plan),
            HookOutcome::Failed,
            Some(format!("exec failed: {}", cairn_kube::errors::describe(&error))),
        ),
    }
}

/// Runs one pod's hooks in order; once any hook with `onError: Fail` has failed (`stop`), the rest are
/// skipped.
async fn run_pod(client: &Client, pod: &PodExecHooks, stop: &AtomicBool) -> Vec<HookRun> {
    let mut runs = Vec::new();
    for hook in &pod.hooks {
        if stop.load(Ordering::Relaxed) {
            let reason = "not run: an earlier hook failed with onError: Fail".to_owned();
            runs.push(record(pod, hook.as_ref().ok(), HookOutcome::Skipped, Some(reason)));
            continue;
        }
        let run = match hook {
            Ok(plan) => {
                let run = run_one(client, pod, plan).await;
                if run.outcome == HookOutcome::Failed && plan.on_error == HookErrorMode::Fail {
                    stop.store(true, Ordering::Relaxed);
                }
                run
            }
            Err(stated) => record(pod, None, HookOutcome::Failed, Some(format!("stated wrongly: {stated}"))),
        };
        runs.push(run);
    }
    runs
}

/// Runs every restored pod's exec hooks (pods side by side, each pod's in order) and returns each run.
pub(crate) async fn run_exec_hooks(client: &Client, pods: Vec<PodExecHooks>) -> Vec<HookRun> {
    let stop = AtomicBool::new(false);
    let stop = &stop;
    // Owned pods, not references, go through the stream: closures over borrowed items would not be
    // provably Send.
    let runs: Vec<Vec<HookRun>> = stream::iter(pods)
        .map(|pod| async move { run_pod(client, &pod, stop).await })
        .buffered(PARALLEL_PODS)
        .collect()
        .await;
    runs.into_iter().flatten().collect()
}
