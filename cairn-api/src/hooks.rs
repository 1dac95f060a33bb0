//! Backup hooks, as a user states them in a Backup's (or Schedule template's) `spec.hooks`: commands run in
//! the containers of selected pods before and after the backup reads the cluster (Velero's field names). Pod
//! annotations state the same per pod ([`annotations`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A backup's hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    /// Hooks for the pods each entry selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<BackupResourceHookSpec>,
}

impl BackupHooks {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Which pods a hooks entry is for, as a Backup's or Restore's selection names them (Velero's fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookSelection {
    /// Namespaces whose pods the hooks are for (names or globs); empty means all. For a restore, the
    /// namespaces as archived, before mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Resource types the entry applies to; hooks run in pods, so an entry applies when `pods` is included
    /// (empty means all types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_resources: Vec<String>,
    /// Resource types the entry does not apply to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_resources: Vec<String>,
    /// Only pods matching this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

impl HookSelection {
    /// The selection, as a backup's or restore's own selection states it (so that it compiles the same way).
    pub fn selection_spec(&self) -> crate::SelectionSpec {
        crate::SelectionSpec {
            included_namespaces: self.included_namespaces.clone(),
            excluded_namespaces: self.excluded_namespaces.clone(),
            included_resources: self.included_resources.clone(),
            excluded_resources: self.excluded_resources.clone(),
            label_selector: self.label_selector.clone(),
            ..crate::SelectionSpec::default()
        }
    }
}

/// Hooks for the pods selected by namespace, resource and labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupResourceHookSpec {
    /// The entry's name, shown in the backup's log and results.
    pub name: String,
    /// Which pods.
    #[serde(flatten)]
    pub selection: HookSelection,
    /// Run before the backup reads the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<BackupHook>,
    /// Run after the backup has read the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<BackupHook>,
}

/// One hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHook {
    /// A command run in a container.
    pub exec: ExecHook,
}

/// A command run in a pod's container, not within a shell (name one, such as `/bin/sh -c`, for one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecHook {
    /// The container; the pod's first container when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// The command and its arguments.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// What a failure (a non-zero exit, a timeout) does: `Fail` (the default) leaves the pod out of the backup
    /// and makes it PartiallyFailed; `Continue` records a warning.
    #[serde(default)]
    pub on_error: HookErrorMode,
    /// How long the command may run (a Go duration); 30s when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(super::OPTIONAL_DURATION_PATTERN))]
    pub timeout: String,
}

/// What a failing hook does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookErrorMode {
    /// An error of the backup.
    #[default]
    Fail,
    /// A warning; the backup goes on as if it had succeeded.
    Continue,
}

/// The pod annotations that state backup hooks: `<phase>.hook.backup.cairn.dev/<field>`, and Velero's
/// `<phase>.hook.backup.velero.io/<field>` with the same meaning (Cairn's win when a pod carries both).
pub mod annotations {
    /// The annotation domains read, Cairn's first.
    pub const DOMAINS: [&str; 2] = ["hook.backup.cairn.dev", "hook.backup.velero.io"];
    /// The container (default: the pod's first).
    pub const CONTAINER: &str = "container";
    /// The command: a JSON array, or a single word.
    pub const COMMAND: &str = "command";
    /// `Fail` or `Continue`.
    pub const ON_ERROR: &str = "on-error";
    /// A Go duration.
    pub const TIMEOUT: &str = "timeout";
}

/// A restore's hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHooks {
    /// Hooks for the restored pods each entry selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<RestoreResourceHookSpec>,
}

impl RestoreHooks {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Hooks for the restored pods selected by namespace (as archived, before mapping), resource and labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResourceHookSpec {
    /// The entry's name, shown in the restore's log and results.
    pub name: String,
    /// Which pods.
    #[serde(flatten)]
    pub selection: HookSelection,
    /// The hooks, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_hooks: Vec<RestoreResourceHook>,
}

/// One restore hook: init containers added to the pod, or a command run in it once it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResourceHook {
    /// Init containers put before the pod's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitRestoreHook>,
    /// A command run in a container of the restored pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecRestoreHook>,
}

/// Init containers added to restored pods, before their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitRestoreHook {
    /// The containers, as a pod spec states them.
    #[serde(default)]
    pub init_containers: Vec<k8s_openapi::api::core::v1::Container>,
    /// Accepted for Velero's manifests; the pod's own start decides when the containers run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timeout: String,
}

/// A command run in a restored pod's container once it runs (or is ready).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecRestoreHook {
    /// The container; the pod's first container when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// The command and its arguments (not in a shell).
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// `Continue` (the default) goes on with the other hooks; `Fail` runs no more hooks. Either way a
    /// failure makes the restore PartiallyFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<HookErrorMode>,
    /// How long the command may run (a Go duration); 30s when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(super::OPTIONAL_DURATION_PATTERN))]
    pub exec_timeout: String,
    /// How long to wait for the container to run (a Go duration); 10m when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(super::OPTIONAL_DURATION_PATTERN))]
    pub wait_timeout: String,
    /// Wait for the pod to be Ready, not only for the container to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_ready: Option<bool>,
}

/// The pod annotations that state restore hooks: `init.hook.restore.cairn.dev/<field>` and
/// `post.hook.restore.cairn.dev/<field>`, and Velero's `*.hook.restore.velero.io/<field>` with the same meaning.
pub mod restore_annotations {
    /// The annotation domains read, Cairn's first.
    pub const DOMAINS: [&str; 2] = ["hook.restore.cairn.dev", "hook.restore.velero.io"];
    /// Init hook: the image of the init container.
    pub const CONTAINER_IMAGE: &str = "container-image";
    /// Init hook: its name (default `restore-hook`).
    pub const CONTAINER_NAME: &str = "container-name";
    /// Init and exec hooks: the command (a JSON array, or one word).
    pub const COMMAND: &str = "command";
    /// Exec hook: the container (default: the pod's first).
    pub const CONTAINER: &str = "container";
    /// Exec hook: `Fail` or `Continue`.
    pub const ON_ERROR: &str = "on-error";
    /// Exec hook: how long the command may run.
    pub const EXEC_TIMEOUT: &str = "exec-timeout";
    /// Exec hook: how long to wait for the container.
    pub const WAIT_TIMEOUT: &str = "wait-timeout";
    /// Exec hook: `true` to wait for the pod to be Ready.
    pub const WAIT_FOR_READY: &str = "wait-for-ready";
}
