//! Which hooks a pod gets (pure): its annotations (Cairn's or Velero's domain) for a phase when it has any,
//! else every spec entry that selects it (by namespace, resource type `pods` and labels, compiled as a
//! backup's own selection is). A command annotation is a JSON array, or one word.

use std::{collections::BTreeMap, time::Duration};

use cairn_api::{BackupHooks, ExecHook, HookErrorMode, hook_annotations};
use cairn_kube::{discovery::Discovery, duration::parse_duration, resources::PODS};
use k8s_openapi::api::core::v1::Pod;

use crate::selection::{Selection, SelectionError};

/// The timeout of a hook that gives none (Velero's).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Before or after the backup reads the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPhase {
    /// Before.
    Pre,
    /// After.
    Post,
}

impl HookPhase {
    /// `pre` or `post`, as annotations spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
    }
}

/// One hook to run in one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    /// Where it was stated: `annotation` or `spec entry NAME`.
    pub(crate) source: String,
    /// The container.
    pub(crate) container: String,
    /// The command.
    pub(crate) command: Vec<String>,
    /// What a failure does.
    pub(crate) on_error: HookErrorMode,
    /// How long it may run.
    pub(crate) timeout: Duration,
}

/// A spec entry, compiled.
pub(crate) struct HookEntry {
    name: String,
    selection: Selection,
    pre: Vec<ExecHook>,
    post: Vec<ExecHook>,
}

/// Compiles the spec's entries; an entry whose selection cannot be read is refused naming it.
pub(crate) fn compile(hooks: &BackupHooks, discovery: &Discovery) -> Result<Vec<HookEntry>, String> {
    let compile_one = |entry: &cairn_api::BackupResourceHookSpec| -> Result<HookEntry, SelectionError> {
        let selection = Selection::compile(&entry.selection.selection_spec(), discovery)?;
        Ok(HookEntry {
            name: entry.name.clone(),
            selection,
            pre: entry.pre.iter().map(|h| h.exec.clone()).collect(),
            post: entry.post.iter().map(|h| h.exec.clone()).collect(),
        })
    };
    hooks
        .resources
        .iter()
        .map(|entry| compile_one(entry).map_err(|e| format!("hooks entry {:?}: {e}", entry.name)))
        .collect()
}

pub(crate) fn timeout_of(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "" => Ok(DEFAULT_TIMEOUT),
        text => parse_duration(text).map_err(|e| format!("timeout {text:?}: {e}")),
    }
}

pub(crate) fn on_error_of(text: &str) -> Result<HookErrorMode, String> {
    match text.trim() {
        "" | "Fail" => Ok(HookErrorMode::Fail),
        "Continue" => Ok(HookErrorMode::Continue),
        other => Err(format!("on-error {other:?}: write Fail or Continue")),
    }
}

/// A command annotation: a JSON array of strings, or the whole text as one word.
pub(crate) fn command_of(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    let command = if text.starts_with('[') {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("command {text:?} is not a JSON array of strings: {e}"))?
    } else {
        vec![text.to_owned()]
    };
    if command.first().is_none_or(String::is_empty) {
        return Err("command is empty".to_owned());
    }
    Ok(command)
}

pub(crate) fn first_container(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()).unwrap_or_default()
}

pub(crate) fn check_container(pod: &Pod, container: String) -> Result<String, String> {
    let containers: Vec<&str> = pod.spec.iter().flat_map(|s| &s.containers).map(|c| c.name.as_str()).collect();
    if containers.contains(&container.as_str()) {
        Ok(container)
    } else {
        Err(format!("the pod has no container {container:?}; its containers: {}", containers.join(", ")))
    }
}

/// The pod's hook of `phase` from its annotations, if it has one (Cairn's domain before Velero's).
fn from_annotations(pod: &Pod, phase: HookPhase) -> Option<Result<Hook, String>> {
    let annotations = pod.metadata.annotations.as_ref()?;
    let (domain, command) = hook_annotations::DOMAINS.iter().find_map(|domain| {
        annotations.get(&format!("{}.{domain}/{}", phase.as_str(), hook_annotations::COMMAND)).map(|c| (*domain, c))
    })?;
    let field =
        |name: &str| annotations.get(&format!("{}.{domain}/{name}", phase.as_str())).cloned().unwrap_or_default();
    let hook = (|| {
        let container = match field(hook_annotations::CONTAINER) {
            named if named.is_empty() => first_container(pod),
            named => named,
        };
        Ok(Hook {
            source: format!("annotation {}.{domain}", phase.as_str()),
            container: check_container(pod, container)?,
            command: command_of(command)?,
            on_error: on_error_of(&field(hook_annotations::ON_ERROR))?,
            timeout: timeout_of(&field(hook_annotations::TIMEOUT))?,
        })
    })();
    Some(hook)
}

/// Every hook of `phase` for `pod`: its annotation's, else those of every entry selecting it, in order.
/// A hook stated wrongly (a bad command, timeout or container) is an error naming the pod's problem.
pub(crate) fn pod_hooks(pod: &Pod, phase: HookPhase, entries: &[HookEntry]) -> Vec<Result<Hook, String>> {
    if let Some(hook) = from_annotations(pod, phase) {
        return vec![hook];
    }
    let namespace = pod.metadata.namespace.as_deref();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let mut hooks = Vec::new();
    for entry in entries {
        let selects = entry.selection.includes_group_resource(PODS)
            && entry.selection.selects_listed(false, namespace, name, &labels, &Default::default());
        if !selects {
            continue;
        }
        let stated = match phase {
            HookPhase::Pre => &entry.pre,
            HookPhase::Post => &entry.post,
        };
        for exec in stated {
            let container = if exec.container.is_empty() { first_container(pod) } else { exec.container.clone() };
            hooks.push((|| {
                Ok(Hook {
                    source: format!("spec entry {}", entry.name),
                    container: check_container(pod, container)?,
                    command: if exec.command.is_empty() {
                        return Err("command is empty".to_owned());
                    } else {
                        exec.command.clone()
                    },
                    on_error: exec.on_error,
                    timeout: timeout_of(&exec.timeout)?,
                })
            })());
        }
    }
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "shop", "annotations": annotations, "labels": labels},
            "spec": {"containers": [{"name": "db", "image": "db:1"}, {"name": "sidecar", "image": "s:1"}]}
        }))
        .unwrap()
    }

    #[test]
    fn annotations_in_either_domain_state_a_hook_with_velero_defaults() {
        let velero = pod(json!({"pre.hook.backup.velero.io/command": "[\"/bin/dump\", \"--all\"]"}), json!({}));
        let hooks = pod_hooks(&velero, HookPhase::Pre, &[]);
        let hook = hooks[0].clone().unwrap();
        assert_eq!(
            (hook.container.as_str(), hook.command, hook.on_error, hook.timeout),
            ("db", vec!["/bin/dump".to_owned(), "--all".to_owned()], HookErrorMode::Fail, DEFAULT_TIMEOUT)
        );
        assert!(pod_hooks(&velero, HookPhase::Post, &[]).is_empty());

        let both = pod(
            json!({"post.hook.backup.cairn.dev/command": "/bin/resume", "post.hook.backup.cairn.dev/container": "sidecar",
                "post.hook.backup.cairn.dev/on-error": "Continue", "post.hook.backup.cairn.dev/timeout": "2m",
                "post.hook.backup.velero.io/command": "/bin/other"}),
            json!({}),
        );
        let hook = pod_hooks(&both, HookPhase::Post, &[]).remove(0).unwrap();
        assert_eq!(hook.source, "annotation post.hook.backup.cairn.dev");
        assert_eq!(
            (hook.container.as_str(), hook.command, hook.on_error),
            ("sidecar", vec!["/bin/resume".to_owned()], HookErrorMode::Continue)
        );
        assert_eq!(hook.timeout, Duration::from_secs(120));
    }

    #[test]
    fn badly_stated_annotations_are_errors_naming_the_problem() {
        let cases = [
            (json!({"pre.hook.backup.cairn.dev/command": "[\"unclosed\""}), "is not a JSON array of strings"),
            (
                json!({"pre.hook.backup.cairn.dev/command": "/x", "pre.hook.backup.cairn.dev/container": "nope"}),
                "has no container \"nope\"; its containers: db, sidecar",
            ),
            (
                json!({"pre.hook.backup.cairn.dev/command": "/x", "pre.hook.backup.cairn.dev/on-error": "Ignore"}),
                "write Fail or Continue",
            ),
            (
                json!({"pre.hook.backup.cairn.dev/command": "/x", "pre.hook.backup.cairn.dev/timeout": "soon"}),
                "timeout \"soon\"",
            ),
        ];
        for (annotations, expected) in cases {
            let error = pod_hooks(&pod(annotations, json!({})), HookPhase::Pre, &[]).remove(0).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
