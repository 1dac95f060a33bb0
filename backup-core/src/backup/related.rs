//! Related objects that come along with selected ones, as in Velero: a Pod's PVCs, a PVC's PV, a
//! ServiceAccount's ClusterRoleBindings and their ClusterRoles, and the CRD of every custom resource.

use cairn_kube::resources::{CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, CRDS, PODS, PVCS, PVS, SERVICE_ACCOUNTS};
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// What selected objects refer to, gathered while listing (small: one entry per referenced object, never
/// one per listed object).
#[derive(Debug, Default)]
pub(super) struct Related {
    /// PVCs mounted by selected Pods: (namespace, name).
    pub claims: BTreeSet<(String, String)>,
    /// PVs bound to selected PVCs.
    pub volumes: BTreeSet<String>,
    /// Selected ServiceAccounts: (namespace, name).
    pub service_accounts: BTreeSet<(String, String)>,
    /// CRD names (`plural.group`) of custom resource types with selected objects.
    pub definitions: BTreeSet<String>,
    /// Objects already in the archive, for the types related objects can have: group-resource ->
    /// (namespace, name). Keeps related objects from being written twice.
    pub written: BTreeMap<&'static str, BTreeSet<(Option<String>, String)>>,
}

/// Every type whose written objects are tracked: the types related objects can have.
const TRACKED: [&str; 5] = [PVCS, PVS, CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, CRDS];

#[derive(Deserialize)]
struct PodLike {
    #[serde(default)]
    spec: PodSpecLike,
}

#[derive(Deserialize, Default)]
struct PodSpecLike {
    #[serde(default)]
    volumes: Vec<VolumeLike>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeLike {
    persistent_volume_claim: Option<ClaimRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimRef {
    claim_name: String,
}

#[derive(Deserialize)]
struct ClaimLike {
    #[serde(default)]
    spec: ClaimSpecLike,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClaimSpecLike {
    volume_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingLike {
    #[serde(default)]
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

#[derive(Deserialize)]
struct Subject {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

impl Related {
    /// Whether `group_resource` objects are tracked in [`Related::written`].
    pub(super) fn tracks(group_resource: &str) -> Option<&'static str> {
        TRACKED.into_iter().find(|k| *k == group_resource)
    }

    /// Notes a written object: remembers it if its type is tracked, and what it refers to.
    pub(super) fn note(&mut self, group_resource: &str, namespace: Option<&str>, name: &str, json: &[u8]) {
        if let Some(kind) = Related::tracks(group_resource) {
            self.written.entry(kind).or_default().insert((namespace.map(str::to_owned), name.to_owned()));
        }
        match group_resource {
            PODS => {
                if let (Ok(pod), Some(ns)) = (serde_json::from_slice::<PodLike>(json), namespace) {
                    for claim in pod.spec.volumes.into_iter().filter_map(|v| v.persistent_volume_claim) {
                        self.claims.insert((ns.to_owned(), claim.claim_name));
                    }
                }
            }
            PVCS => {
                if let Ok(ClaimLike { spec: ClaimSpecLike { volume_name: Some(volume) } }) =
                    serde_json::from_slice(json)
                    && !volume.is_empty()
                {
                    self.volumes.insert(volume);
                }
            }
            SERVICE_ACCOUNTS => {
                if let Some(ns) = namespace {
                    self.service_accounts.insert((ns.to_owned(), name.to_owned()));
                }
            }
            _ => {}
        }
    }

    /// Whether an object of a tracked type is already in the archive.
    pub(super) fn is_written(&self, group_resource: &str, namespace: Option<&str>, name: &str) -> bool {
        Related::tracks(group_resource)
            .and_then(|k| self.written.get(k))
            .is_some_and(|set| set.contains(&(namespace.map(str::to_owned), name.to_owned())))
    }
}

/// The ClusterRole a ClusterRoleBinding grants, if the binding names one of `service_accounts` as a subject.
pub(super) fn binding_role_for(json: &[u8], service_accounts: &BTreeSet<(String, String)>) -> Option<String> {
    let binding: BindingLike = serde_json::from_slice(json).ok()?;
    let binds_one = binding.subjects.iter().any(|s| {
        s.kind == "ServiceAccount"
            && s.namespace.as_ref().is_some_and(|ns| service_accounts.contains(&(ns.clone(), s.name.clone())))
    });
    (binds_one && binding.role_ref.kind == "ClusterRole").then_some(binding.role_ref.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_lead_to_their_claims_and_claims_to_their_volumes() {
        let mut related = Related::default();
        let pod = br#"{"spec":{"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}},{"name":"c","configMap":{"name":"x"}}]}}"#;
        related.note(PODS, Some("web"), "p", pod);
        related.note(PVCS, Some("web"), "data", br#"{"spec":{"volumeName":"pv-1"}}"#);
        assert!(related.claims.contains(&("web".to_owned(), "data".to_owned())));
        assert!(related.volumes.contains("pv-1"));
        assert!(related.is_written(PVCS, Some("web"), "data"));
        assert!(!related.is_written(PVS, None, "pv-1"));
    }

    #[test]
    fn bindings_of_selected_service_accounts_are_found() {
        let accounts = BTreeSet::from([("web".to_owned(), "runner".to_owned())]);
        let binding = br#"{"subjects":[{"kind":"ServiceAccount","name":"runner","namespace":"web"}],"roleRef":{"kind":"ClusterRole","name":"view","apiGroup":"rbac.authorization.k8s.io"}}"#;
        assert_eq!(binding_role_for(binding, &accounts).as_deref(), Some("view"));
        let other = br#"{"subjects":[{"kind":"ServiceAccount","name":"runner","namespace":"db"}],"roleRef":{"kind":"ClusterRole","name":"view"}}"#;
        assert_eq!(binding_role_for(other, &accounts), None);
    }
}
