//! Which restore hooks an archived pod gets (pure).

use std::{collections::BTreeMap, time::Duration};

use cairn_api::{HookErrorMode, RestoreHooks, RestoreResourceHook, restore_annotations as keys};
use cairn_kube::{discovery::Discovery, duration::parse_duration, resources::PODS};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::{
    backup::hooks::{check_container, command_of, first_container, on_error_of, timeout_of},
    selection::Selection,
};

/// How long an exec hook waits for its container when it does not say (Velero waits without end).
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(600);
/// The name of an init container an annotation adds without naming it.
const DEFAULT_INIT_NAME: &str = "restore-hook";

/// A spec entry, compiled.
#[derive(Debug)]
pub(crate) struct RestoreHookEntry {
    name: String,
    selection: Selection,
    hooks: Vec<RestoreResourceHook>,
}

/// Compiles the spec's entries; an entry whose selection cannot be read is refused naming it.
pub(crate) fn compile(hooks: &RestoreHooks, discovery: &Discovery) -> Result<Vec<RestoreHookEntry>, String> {
    hooks
        .resources
        .iter()
        .map(|entry| {
            let spec = entry.selection.selection_spec();
            for hook in &entry.post_hooks {
                if let Some(exec) = &hook.exec {
                    for (what, text) in [("execTimeout", &exec.exec_timeout), ("waitTimeout", &exec.wait_timeout)] {
                        if !text.is_empty() {
                            parse_duration(text).map_err(|e| format!("hooks entry {:?}: {what}: {e}", entry.name))?;
                        }
                    }
                }
            }
            let selection =
                Selection::compile(&spec, discovery).map_err(|e| format!("hooks entry {:?}: {e}", entry.name))?;
            Ok(RestoreHookEntry { name: entry.name.clone(), selection, hooks: entry.post_hooks.clone() })
        })
        .collect()
}

/// An exec hook to run in a restored pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecPlan {
    /// Where it was stated.
    pub(crate) source: String,
    /// The container.
    pub(crate) container: String,
    /// The command.
    pub(crate) command: Vec<String>,
    /// What a failure does to the hooks not run yet.
    pub(crate) on_error: HookErrorMode,
    /// How long the command may run.
    pub(crate) exec_timeout: Duration,
    /// How long to wait for the container to run.
    pub(crate) wait_timeout: Duration,
    /// Wait for the pod to be Ready too.
    pub(crate) wait_for_ready: bool,
}

/// A pod's restore hooks: init containers to put first, and exec hooks (each stated rightly or not).
#[derive(Debug, Clone, Default)]
pub(crate) struct PodRestoreHooks {
    /// Init containers, in order.
    pub(crate) init_containers: Vec<Value>,
    /// Exec hooks, in order.
    pub(crate) exec: Vec<Result<ExecPlan, String>>,
}

/// The annotation `<phase>.<domain>/<field>` of the first domain that states `<phase>.<domain>/<key>`.
fn annotated<'p>(annotations: &'p BTreeMap<String, String>, phase: &str, key: &str) -> Option<(&'static str, &'p str)> {
    keys::DOMAINS
        .iter()
        .find_map(|domain| annotations.get(&format!("{phase}.{domain}/{key}")).map(|v| (*domain, v.as_str())))
}

fn init_from_annotations(annotations: &BTreeMap<String, String>) -> Option<Result<Value, String>> {
    let (domain, image) = annotated(annotations, "init", keys::CONTAINER_IMAGE)?;
    let field = |name: &str| annotations.get(&format!("init.{domain}/{name}")).cloned().unwrap_or_default();
    let name = match field(keys::CONTAINER_NAME) {
        named if named.is_empty() => DEFAULT_INIT_NAME.to_owned(),
        named => named,
    };
    let mut container = json!({"name": name, "image": image});
    match field(keys::COMMAND) {
        command if command.is_empty() => {}
        command => match command_of(&command) {
            Ok(command) => container["command"] = json!(command),
            Err(problem) => return Some(Err(format!("init hook (annotation init.{domain}): {problem}"))),
        },
    }
    Some(Ok(container))
}

fn exec_from_annotations(pod: &Pod, annotations: &BTreeMap<String, String>) -> Option<Result<ExecPlan, String>> {
    let (domain, command) = annotated(annotations, "post", keys::COMMAND)?;
    let field = |name: &str| annotations.get(&format!("post.{domain}/{name}")).cloned().unwrap_or_default();
    let source = format!("annotation post.{domain}");
    let plan = (|| {
        let container = match field(keys::CONTAINER) {
            named if named.is_empty() => first_container(pod),
            named => named,
        };
        let wait_for_ready = match field(keys::WAIT_FOR_READY).trim() {
            "" | "false" => false,
            "true" => true,
            other => return Err(format!("wait-for-ready {other:?}: write true or false")),
        };
        let on_error = match field(keys::ON_ERROR) {
            text if text.trim().is_empty() => HookErrorMode::Continue,
            text => on_error_of(&text)?,
        };
        Ok(ExecPlan {
            source: source.clone(),
            container: check_container(pod, container)?,
            command: command_of(command)?,
            on_error,
            exec_timeout: timeout_of(&field(keys::EXEC_TIMEOUT))?,
            wait_timeout: match field(keys::WAIT_TIMEOUT) {
                text if text.trim().is_empty() => DEFAULT_WAIT,
                text => parse_duration(text.trim()).map_err(|e| format!("wait-timeout {text:?}: {e}"))?,
            },
            wait_for_ready,
        })
    })();
    Some(plan.map_err(|problem| format!("{source}: {problem}")))
}

fn exec_from_spec(pod: &Pod, entry: &str, exec: &cairn_api::ExecRestoreHook) -> Result<ExecPlan, String> {
    let container = if exec.container.is_empty() { first_container(pod) } else { exec.container.clone() };
    let source = format!("spec entry {entry}");
    let plan = (|| {
        if exec.command.is_empty() {
            return Err("command is empty".to_owned());
        }
        Ok(ExecPlan {
            source: source.clone(),
            container: check_container(pod, container)?,
            command: exec.command.clone(),
            on_error: exec.on_error.unwrap_or(HookErrorMode::Continue),
            exec_timeout: timeout_of(&exec.exec_timeout)?,
            wait_timeout: if exec.wait_timeout.is_empty() {
                DEFAULT_WAIT
            } else {
                parse_duration(&exec.wait_timeout).map_err(|e| format!("waitTimeout: {e}"))?
            },
            wait_for_ready: exec.wait_for_ready.unwrap_or(false),
        })
    })();
    plan.map_err(|problem| format!("{source}: {problem}"))
}

/// The restore hooks of the archived pod `object` (in `namespace` as archived). An init hook stated wrongly
/// is an error: the pod is better not restored than started without what should run before it.
pub(crate) fn pod_restore_hooks(object: &Value, entries: &[RestoreHookEntry]) -> Result<PodRestoreHooks, String> {
    let pod: Pod = serde_json::from_value(object.clone()).map_err(|e| format!("the pod cannot be read: {e}"))?;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let selecting: Vec<&RestoreHookEntry> = entries
        .iter()
        .filter(|e| {
            e.selection.includes_group_resource(PODS)
                && e.selection.selects_listed(
                    false,
                    pod.metadata.namespace.as_deref(),
                    &name,
                    &labels,
                    &Default::default(),
                )
        })
        .collect();
    let mut hooks = PodRestoreHooks::default();
    match init_from_annotations(&annotations) {
        Some(container) => hooks.init_containers.push(container?),
        None => {
            for entry in &selecting {
                for init in entry.hooks.iter().filter_map(|h| h.init.as_ref()) {
                    for container in &init.init_containers {
                        hooks.init_containers.push(serde_json::to_value(container).map_err(|e| e.to_string())?);
                    }
                }
            }
        }
    }
    match exec_from_annotations(&pod, &annotations) {
        Some(plan) => hooks.exec.push(plan),
        None => {
            for entry in &selecting {
                for exec in entry.hooks.iter().filter_map(|h| h.exec.as_ref()) {
                    hooks.exec.push(exec_from_spec(&pod, &entry.name, exec));
                }
            }
        }
    }
    Ok(hooks)
}

/// Puts `containers` before the pod's own init containers.
pub(crate) fn prepend_init_containers(object: &mut Value, containers: Vec<Value>) {
    if containers.is_empty() {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let existing = spec.remove("initContainers").and_then(|v| match v {
        Value::Array(items) => Some(items),
        _ => None,
    });
    let mut all = containers;
    all.extend(existing.unwrap_or_default());
    spec.insert("initContainers".to_owned(), Value::Array(all));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": "shop", "annotations": annotations},
            "spec": {"initContainers": [{"name": "own", "image": "own:1"}],
                "containers": [{"name": "db", "image": "db:1"}, {"name": "side", "image": "s:1"}]}})
    }

    #[test]
    fn annotations_add_an_init_container_first_and_an_exec_hook_with_velero_defaults() {
        let mut object = pod(json!({
            "init.hook.restore.velero.io/container-image": "restore:1",
            "init.hook.restore.velero.io/command": "[\"/bin/restore\", \"--all\"]",
            "post.hook.restore.cairn.dev/command": "[\"/bin/check\"]",
            "post.hook.restore.cairn.dev/container": "side",
        }));
        let hooks = pod_restore_hooks(&object, &[]).unwrap();
        assert_eq!(
            hooks.init_containers,
            [json!({"name": "restore-hook", "image": "restore:1", "command": ["/bin/restore", "--all"]})]
        );
        let plan = hooks.exec[0].clone().unwrap();
        assert_eq!(
            (plan.container.as_str(), plan.on_error, plan.wait_for_ready),
            ("side", HookErrorMode::Continue, false)
        );
        assert_eq!((plan.exec_timeout, plan.wait_timeout), (Duration::from_secs(30), DEFAULT_WAIT));
        prepend_init_containers(&mut object, hooks.init_containers);
        let names: Vec<&str> =
            object["spec"]["initContainers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["restore-hook", "own"]);
    }

    #[test]
    fn badly_stated_hooks_name_their_problem() {
        let bad_init = pod(
            json!({"init.hook.restore.cairn.dev/container-image": "x:1", "init.hook.restore.cairn.dev/command": "[oops"}),
        );
        assert!(
            pod_restore_hooks(&bad_init, &[])
                .unwrap_err()
                .contains("init hook (annotation init.hook.restore.cairn.dev)")
        );
        let bad_exec = pod(
            json!({"post.hook.restore.cairn.dev/command": "/x", "post.hook.restore.cairn.dev/wait-for-ready": "yes"}),
        );
        let error = pod_restore_hooks(&bad_exec, &[]).unwrap().exec[0].clone().unwrap_err();
        assert!(error.contains("wait-for-ready \"yes\": write true or false"), "{error}");
    }
}
