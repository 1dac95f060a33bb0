//! The order of a restore, in one place: which types are never restored, and the waves the rest are applied
//! in. CRDs come first (and are waited for until Established), then Velero's high-priority list one type
//! at a time, then every other type together, then the low list: webhook configurations and aggregated
//! APIs, which call Services that must exist first. Backups list types wave by wave in this order, so a
//! restore of a Cairn archive meets the objects in the order it applies them and reads the archive once.

use cairn_kube::resources::CRDS;

/// Group-resources never restored (as in Velero): nodes and events belong to the cluster, Cairn's and
/// Velero's own objects to the tool, CSI node objects and attachments to the kubelet.
pub const NEVER_RESTORED: &[&str] = &[
    "nodes",
    "events",
    "events.events.k8s.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backups.cairn.dev",
    "restores.cairn.dev",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "backuprepositories.velero.io",
    // Requests to one cluster's Cairn server, and work on its nodes: replayed elsewhere they would delete
    // backups, drain nodes or prune images there.
    "deletebackuprequests.cairn.dev",
    "downloadrequests.cairn.dev",
    "serverstatusrequests.cairn.dev",
    "nodemaintenances.cairn.dev",
    "imageprunes.cairn.dev",
];

/// Velero's high-priority list, restored one type at a time in this order after CRDs.
pub const HIGH_PRIORITY: &[&str] = &[
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclass.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses.scheduling.k8s.io",
    "pods",
    "replicasets.apps",
    "endpoints",
    "services",
];

/// Restored last, after the Services they call.
pub const LOW_PRIORITY: &[&str] = &[
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
    "apiservices.apiregistration.k8s.io",
];

/// The wave a group-resource is applied in: 0 CRDs, 1.. the high list, then the rest, then the low list.
/// `None` for types never restored.
pub fn wave_of(group_resource: &str) -> Option<usize> {
    if NEVER_RESTORED.contains(&group_resource) {
        return None;
    }
    if group_resource == CRDS {
        return Some(0);
    }
    if let Some(i) = HIGH_PRIORITY.iter().position(|g| *g == group_resource) {
        return Some(1 + i);
    }
    let rest = 1 + HIGH_PRIORITY.len();
    match LOW_PRIORITY.iter().position(|g| *g == group_resource) {
        Some(_) => Some(rest + 1),
        None => Some(rest),
    }
}

/// How many waves there are.
pub const WAVES: usize = 1 + HIGH_PRIORITY.len() + 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_first_webhooks_last_and_events_never() {
        assert_eq!(wave_of(CRDS), Some(0));
        assert_eq!(wave_of("namespaces"), Some(1));
        assert!(wave_of("pods") < wave_of("replicasets.apps"));
        assert!(wave_of("services") < wave_of("deployments.apps"));
        assert!(wave_of("deployments.apps") < wave_of("validatingwebhookconfigurations.admissionregistration.k8s.io"));
        assert_eq!(wave_of("widgets.demo.cairn.dev"), wave_of("deployments.apps"));
        assert_eq!(wave_of("events"), None);
        assert_eq!(wave_of("nodes"), None);
        assert!(wave_of("apiservices.apiregistration.k8s.io").unwrap() < WAVES);
    }
}
