//! Running a phase's hooks in the pods that have them, and recording each run.

use std::collections::BTreeSet;

use cairn_api::HookErrorMode;
use cairn_kube::{
    exec::exec,
    report::{Problem, RunLog, Severity},
    resources::PODS,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use serde::{Deserialize, Serialize};

use super::resolve::{Hook, HookEntry, HookPhase, pod_hooks};
use crate::{backup::BackupResults, selection::Selection};

/// Pods listed per request while looking for pods with hooks.
const PODS_PER_PAGE: u32 = 500;
/// Pods with hooks read at once.
const POD_READS: usize = 8;

/// How a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookOutcome {
    /// Exited with 0.
    Succeeded,
    /// Exited otherwise, timed out, could not start, or was stated wrongly.
    Failed,
    /// Not run: its pod was not running, or its pre hook failed.
    Skipped,
}

/// One hook's run, as the backup's results keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRun {
    /// `pre` or `post`.
    pub phase: HookPhase,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container.
    #[serde(default)]
    pub container: String,
    /// Where the hook was stated.
    pub source: String,
    /// The command.
    #[serde(default)]
    pub command: Vec<String>,
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How long it ran, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines of its output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

fn pod_key(pod: &Pod) -> (String, String) {
    (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default())
}

/// The selected pods that have hooks of either phase. Whether a pod has hooks depends on its metadata alone
/// (annotations, labels, name and namespace), so pods are listed as metadata, a page at a time, and only
/// those with hooks are read whole (their containers name where hooks run): a pod's spec and status are
/// most of its size, and this list runs before every backup that takes pods. Pods are listed in `namespaces`
/// one by one when the plan lists namespaces so, else across the cluster.
pub(crate) async fn hook_pods(
    client: &Client,
    selection: &Selection,
    namespaces: Option<&[String]>,
    excluded_namespaces: &BTreeSet<String>,
    entries: &[HookEntry],
) -> Result<Vec<Pod>, kube::Error> {
    if !selection.includes_group_resource(PODS) {
        return Ok(Vec::new());
    }
    let apis: Vec<Api<Pod>> = match namespaces {
        Some(namespaces) => namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect(),
        None => vec![Api::all(client.clone())],
    };
    let mut with_hooks = Vec::new();
    for api in apis {
        let mut params = ListParams::default().limit(PODS_PER_PAGE);
        loop {
            let page = api.list_metadata(&params).await?;
            for listed in page.items {
                let pod = Pod { metadata: listed.metadata, ..Pod::default() };
                let (namespace, name) = pod_key(&pod);
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let selected = pod.metadata.deletion_timestamp.is_none()
                    && selection.selects_listed(false, Some(&namespace), &name, &labels, excluded_namespaces);
                let has_hooks =
                    || [HookPhase::Pre, HookPhase::Post].iter().any(|p| !pod_hooks(&pod, *p, entries).is_empty());
                if selected && has_hooks() {
                    with_hooks.push((namespace, name));
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    let read = with_hooks.into_iter().map(|(namespace, name)| async move {
        Api::<Pod>::namespaced(client.clone(), &namespace).get_opt(&name).await
    });
    let pods: Vec<_> = futures::stream::iter(read).buffered(POD_READS).collect().await;
    // A pod deleted since it was listed has no hooks to run.
    pods.into_iter().filter_map(Result::transpose).collect()
}

fn problem(pod: &Pod, reason: String) -> Problem {
    let (namespace, name) = pod_key(pod);
    Problem { resource: Some(PODS.to_owned()), namespace: Some(namespace), name: Some(name), reason }
}

/// Runs one hook and records it; whether it succeeded.
async fn run_hook(
    client: &Client,
    pod: &Pod,
    phase: HookPhase,
    hook: &Hook,
    runs: &mut Vec<HookRun>,
) -> (bool, String) {
    let (namespace, name) = pod_key(pod);
    let mut run = HookRun {
        phase,
        namespace: namespace.clone(),
        pod: name.clone(),
        container: hook.container.clone(),
        source: hook.source.clone(),
        command: hook.command.clone(),
        outcome: HookOutcome::Failed,
        exit_code: None,
        duration_ms: 0,
        message: None,
        output: Vec::new(),
    };
    let summary = match exec(client, &namespace, &name, &hook.container, &hook.command, hook.timeout).await {
        Ok(outcome) => {
            run.exit_code = outcome.exit_code;
            run.duration_ms = outcome.duration.as_millis() as u64;
            run.output = outcome.output.clone();
            if outcome.succeeded() {
                run.outcome = HookOutcome::Succeeded;
            }
            run.message = outcome.problem();
            let last = outcome.output.last().map(|l| format!("; last output: {l}")).unwrap_or_default();
            format!("{}{last}", run.message.clone().unwrap_or_else(|| "exited with 0".to_owned()))
        }
        Err(error) => {
            let message = format!("exec failed: {}", cairn_kube::errors::describe(&error));
            run.message = Some(message.clone());
            message
        }
    };
    let succeeded = run.outcome == HookOutcome::Succeeded;
    runs.push(run);
    (succeeded, summary)
}

fn skipped(pod: &Pod, phase: HookPhase, hook: Option<&Hook>, message: String) -> HookRun {
    let (namespace, name) = pod_key(pod);
    HookRun {
        phase,
        namespace,
        pod: name,
        container: hook.map(|h| h.container.clone()).unwrap_or_default(),
        source: hook.map(|h| h.source.clone()).unwrap_or_default(),
        command: hook.map(|h| h.command.clone()).unwrap_or_default(),
        outcome: HookOutcome::Skipped,
        exit_code: None,
        duration_ms: 0,
        message: Some(message),
        output: Vec::new(),
    }
}

/// Runs the `phase` hooks of `pods` (those in `left_out` are skipped), recording each in `results` and
/// `log`; returns the pods whose hooks failed with `onError: Fail`.
pub(crate) async fn run_phase(
    client: &Client,
    pods: &[Pod],
    phase: HookPhase,
    entries: &[HookEntry],
    left_out: &BTreeSet<(String, String)>,
    results: &mut BackupResults,
    log: &mut RunLog,
) -> BTreeSet<(String, String)> {
    let mut failed_pods = BTreeSet::new();
    for pod in pods {
        let hooks = pod_hooks(pod, phase, entries);
        if hooks.is_empty() || left_out.contains(&pod_key(pod)) {
            continue;
        }
        let (namespace, name) = pod_key(pod);
        let state = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".to_owned());
        if state != "Running" {
            let reason = format!("the pod is not running ({state}): its {} hooks were skipped", phase.as_str());
            log.problem(Severity::Warning, &problem(pod, reason.clone()));
            results.warnings.push(problem(pod, reason.clone()));
            for hook in &hooks {
                results.hooks.push(skipped(pod, phase, hook.as_ref().ok(), reason.clone()));
            }
            continue;
        }
        for hook in hooks {
            let (ok, summary, on_error, source) = match &hook {
                Ok(hook) => {
                    let (ok, summary) = run_hook(client, pod, phase, hook, &mut results.hooks).await;
                    (ok, summary, hook.on_error, hook.source.clone())
                }
                Err(stated) => {
                    results
                        .hooks
                        .push(HookRun { outcome: HookOutcome::Failed, ..skipped(pod, phase, None, stated.clone()) });
                    (false, format!("stated wrongly: {stated}"), HookErrorMode::Fail, "its annotations".to_owned())
                }
            };
            let run = results.hooks.last().cloned();
            let duration = run.as_ref().map_or(0, |r| r.duration_ms);
            if ok {
                log.info(format!(
                    "{} hook ({source}) in {namespace}/{name}: exited with 0 in {duration} ms",
                    phase.as_str()
                ));
                continue;
            }
            let reason = format!("{} hook ({source}) failed: {summary}", phase.as_str());
            match on_error {
                HookErrorMode::Continue => {
                    log.problem(Severity::Warning, &problem(pod, format!("{reason} (onError: Continue)")));
                    results.warnings.push(problem(pod, format!("{reason} (onError: Continue)")));
                }
                HookErrorMode::Fail => {
                    let left = if phase == HookPhase::Pre { "; the pod is left out of the backup" } else { "" };
                    log.problem(Severity::Error, &problem(pod, format!("{reason}{left}")));
                    results.errors.push(problem(pod, format!("{reason}{left}")));
                    failed_pods.insert(pod_key(pod));
                    break;
                }
            }
        }
    }
    failed_pods
}
