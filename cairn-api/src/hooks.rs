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

/// Hooks for the pods selected by namespace, resource and labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupResourceHookSpec {
    /// The entry's name, shown in the backup's log and results.
    pub name: String,
    /// Namespaces whose pods the hooks are for (names or globs); empty means all.
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
