//! What a backup or restore selects, as a user states it (Velero's field names); compiled against a
//! cluster's discovery by `backup_core::selection`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

/// What to select, as a user states it. Field names follow Velero's backup and restore specs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectionSpec {
    /// Namespaces to take (names or globs); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces to leave out (names or globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Resource types to take (`pods`, `po`, `deployments.apps`, `*`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_resources: Vec<String>,
    /// Resource types to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_resources: Vec<String>,
    /// Only objects matching this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Only objects matching any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub or_label_selectors: Vec<LabelSelector>,
    /// Cluster-scoped types: `false` none, `true` all, unset only when every namespace is selected (otherwise
    /// only those related to selected objects, such as the PV of a selected PVC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cluster_resources: Option<bool>,
}
