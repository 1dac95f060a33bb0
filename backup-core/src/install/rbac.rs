//! The server's permissions: what backups and restores need cluster-wide, and what the server itself needs
//! in its own namespace.
//!
//! They are broad, and this is not least privilege. Reading every resource (Secrets included), creating,
//! updating and patching every resource, and `bind` and `escalate` on roles and clusterroles make the
//! server's account effectively cluster-admin: it could bind itself to `cluster-admin`. (Velero's account is
//! bound to `cluster-admin` outright.) Restoring RBAC objects needs `bind` and `escalate`, so they are granted
//! by default; [`InstallOptions::restore_rbac`](super::InstallOptions::restore_rbac) set to false
//! (`cairn install --no-rbac-restore`, the chart's `rbac.restoreRbac: false`) leaves them out, and restoring a
//! Role or ClusterRole that grants more than the server holds, or a binding to one, is then refused by the
//! API server. Even without them `create` on every resource includes pods (which run as any ServiceAccount of
//! their namespace), `pods/exec` and `serviceaccounts/token`, so whoever controls the server's account can
//! still reach other accounts' permissions: guard it like a cluster administrator's.
//!
//! What the rules do limit: no rule grants `delete` or `deletecollection` outside `cairn.dev` (restores never
//! delete) but `delete` on pods, which node maintenance needs; none grants `impersonate`, and none has a
//! wildcard verb.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject},
};

use super::{SERVER_NAME, meta};
use cairn_api::GROUP;

/// The name of the ClusterRole and ClusterRoleBinding of a server in `namespace`: one pair per installation,
/// so servers in two namespaces do not take each other's binding (Velero names its binding the same way).
pub fn cluster_role_name(namespace: &str) -> String {
    format!("{SERVER_NAME}-{namespace}")
}

/// A rule granting `verbs` on `resources` of `api_groups`.
pub(super) fn rule(api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(api_groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// The cluster-wide rules; with `restore_rbac`, [`rbac_restore_rules`] too. Kubernetes cannot grant "every
/// resource except subresources", so the wildcards also reach subresources (`pods/exec`,
/// `serviceaccounts/token`): that is the price of restoring custom resources of any type. With
/// `restore_rbac` the account is cluster-admin-equivalent (see the module documentation); either way it
/// may not delete anything outside `cairn.dev` but pods (for drains) nor impersonate anyone.
pub fn cluster_rules(restore_rbac: bool) -> Vec<PolicyRule> {
    let mut rules = vec![
        // Backups read every type the API server serves, in every namespace, at its preferred version.
        rule(&["*"], &["*"], &["get", "list", "watch"]),
        // Restores create missing objects and merge-patch (or update) existing ones, of any type. They never
        // delete, so no rule here carries `delete` or `deletecollection`.
        rule(&["*"], &["*"], &["create", "update", "patch"]),
        // Node maintenance (NodeMaintenance objects): draining cordons nodes (patch, above) and evicts pods
        // (create on pods/eviction, above); with `drain.disableEviction` or `deadlineAction: Delete` it
        // deletes pods. The one deletion the server may do outside cairn.dev.
        rule(&[""], &["pods"], &["delete"]),
    ];
    if restore_rbac {
        rules.extend(rbac_restore_rules());
    }
    rules
}

/// The rule that lets restores recreate RBAC objects granting more than the server holds: `escalate` to
/// create or update such a Role or ClusterRole, `bind` to create a binding to one. It also lets the server
/// grant itself anything, `cluster-admin` included, which makes its account cluster-admin-equivalent.
pub fn rbac_restore_rules() -> Vec<PolicyRule> {
    vec![rule(&["rbac.authorization.k8s.io"], &["roles", "clusterroles"], &["bind", "escalate"])]
}

/// The rules in the server's own namespace.
pub fn namespace_rules() -> Vec<PolicyRule> {
    let mut cairn_resources = Vec::new();
    for crd in cairn_api::crds() {
        let plural = crd.spec.names.plural;
        cairn_resources.push(format!("{plural}/status"));
        cairn_resources.push(plural);
    }
    cairn_resources.sort();
    let cairn_resources: Vec<&str> = cairn_resources.iter().map(String::as_str).collect();
    vec![
        // The server owns its cairn.dev objects: it creates backups for schedules, records status, and deletes
        // backups and restores when a DeleteBackupRequest or garbage collection says so. The only deletion
        // the server may do in the cluster.
        rule(
            &[GROUP],
            &cairn_resources,
            &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
        ),
        // Leader election (`leader.rs`): one server replica works at a time, holding a Lease it reads, creates
        // and replaces; it never lists or watches Leases.
        rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"]),
        // Storage locations name a Secret holding their credentials.
        rule(&[""], &["secrets"], &["get"]),
    ]
}

/// The ServiceAccount the server runs as, with `annotations` (such as an IAM role for service accounts).
pub(super) fn service_account(namespace: &str, annotations: &BTreeMap<String, String>) -> ServiceAccount {
    let mut metadata = meta(SERVER_NAME, Some(namespace));
    metadata.annotations = (!annotations.is_empty()).then(|| annotations.clone());
    ServiceAccount { metadata, ..ServiceAccount::default() }
}

fn subject(namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: SERVER_NAME.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }
}

/// The cluster-wide role, [`cluster_rules`].
pub(super) fn cluster_role(namespace: &str, restore_rbac: bool) -> ClusterRole {
    ClusterRole {
        metadata: meta(&cluster_role_name(namespace), None),
        rules: Some(cluster_rules(restore_rbac)),
        ..ClusterRole::default()
    }
}

/// Binds [`cluster_role`] to the server's ServiceAccount.
pub(super) fn cluster_role_binding(namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(&cluster_role_name(namespace), None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: cluster_role_name(namespace),
        },
        subjects: Some(vec![subject(namespace)]),
    }
}

/// The role in the server's namespace, [`namespace_rules`].
pub(super) fn role(namespace: &str) -> Role {
    Role { metadata: meta(SERVER_NAME, Some(namespace)), rules: Some(namespace_rules()) }
}

/// Binds [`role`] to the server's ServiceAccount.
pub(super) fn role_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(SERVER_NAME, Some(namespace)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: SERVER_NAME.to_owned(),
        },
        subjects: Some(vec![subject(namespace)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_rules() -> Vec<PolicyRule> {
        cluster_rules(true).into_iter().chain(namespace_rules()).collect()
    }

    fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
        rules.iter().any(|r| {
            r.api_groups.as_deref().unwrap_or_default().iter().any(|g| g == group)
                && r.resources.as_deref().unwrap_or_default().iter().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    }

    #[test]
    fn rbac_never_grants_delete_outside_cairn_dev_but_pods_for_drains() {
        let plurals: Vec<String> = cairn_api::crds().into_iter().map(|c| c.spec.names.plural).collect();
        let pod_deletion = rule(&[""], &["pods"], &["delete"]);
        for rule in all_rules() {
            assert!(!rule.verbs.iter().any(|v| v == "*"), "wildcard verb in {rule:?}");
            if rule == pod_deletion {
                continue;
            }
            if rule.verbs.iter().any(|v| v == "delete" || v == "deletecollection") {
                assert_eq!(rule.api_groups.as_deref(), Some(&[GROUP.to_owned()][..]), "{rule:?}");
                for resource in rule.resources.as_deref().unwrap_or_default() {
                    let base = resource.split('/').next().unwrap_or_default();
                    assert!(plurals.iter().any(|p| p == base), "delete on {resource}");
                }
            }
        }
    }

    #[test]
    fn rbac_never_grants_impersonation() {
        assert!(all_rules().iter().all(|r| !r.verbs.iter().any(|v| v == "impersonate")));
    }

    #[test]
    fn cluster_role_reads_everything_and_writes_without_deleting() {
        let rules = cluster_rules(true);
        let grants = |verb: &str| {
            rules.iter().any(|r| {
                r.verbs.iter().any(|v| v == verb)
                    && r.api_groups.as_deref() == Some(&["*".to_owned()][..])
                    && r.resources.as_deref() == Some(&["*".to_owned()][..])
            })
        };
        for verb in ["get", "list", "watch", "create", "update", "patch"] {
            assert!(grants(verb), "{verb}");
        }
        assert!(!grants("delete"));
    }

    #[test]
    fn restoring_rbac_objects_is_allowed_to_bind_and_escalate() {
        let rbac = cluster_rules(true)
            .into_iter()
            .find(|r| r.api_groups.as_deref() == Some(&["rbac.authorization.k8s.io".to_owned()][..]))
            .unwrap();
        assert_eq!(rbac.verbs, ["bind", "escalate"]);
        assert_eq!(rbac.resources.unwrap(), ["roles", "clusterroles"]);
    }

    #[test]
    fn without_rbac_restore_only_bind_and_escalate_are_dropped() {
        let with = cluster_rules(true);
        let without = cluster_rules(false);
        let rbac = "rbac.authorization.k8s.io";
        for resource in ["roles", "clusterroles"] {
            assert!(grants(&with, rbac, resource, "escalate") && grants(&with, rbac, resource, "bind"));
            assert!(!grants(&without, rbac, resource, "escalate") && !grants(&without, rbac, resource, "bind"));
        }
        assert_eq!(with[..without.len()], without[..]);
        assert_eq!(with[without.len()..], rbac_restore_rules()[..]);
        let role = cluster_role("cairn", false);
        assert_eq!(role.rules.unwrap(), without);
    }

    #[test]
    fn server_namespace_role_covers_cairn_status_leases_and_secrets() {
        let rules = namespace_rules();
        let allows = |group: &str, resource: &str, verb: &str| grants(&rules, group, resource, verb);
        assert!(allows(GROUP, "backups/status", "patch"));
        assert!(allows(GROUP, "deletebackuprequests", "delete"));
        assert!(allows("coordination.k8s.io", "leases", "update"));
        assert!(allows("", "secrets", "get"));
        assert!(!allows("", "secrets", "list"));
    }

    #[test]
    fn server_namespace_role_grants_no_verb_the_server_does_not_use() {
        let rules = namespace_rules();
        let leases = rules.iter().find(|r| r.resources.as_deref() == Some(&["leases".to_owned()][..])).unwrap();
        assert_eq!(leases.verbs, ["get", "create", "update"], "leader election never lists or watches Leases");
        for group in ["", "events.k8s.io"] {
            assert!(!grants(&rules, group, "events", "create"), "the server emits no events");
        }
    }

    #[test]
    fn service_account_carries_the_given_annotations_only() {
        assert!(service_account("cairn", &BTreeMap::new()).metadata.annotations.is_none());
        let role_arn = BTreeMap::from([("eks.amazonaws.com/role-arn".to_owned(), "arn:aws:iam::1:role/r".to_owned())]);
        let account = service_account("cairn", &role_arn);
        assert_eq!(account.metadata.annotations, Some(role_arn));
    }

    #[test]
    fn bindings_name_the_server_account_in_its_namespace() {
        let binding = cluster_role_binding("ops");
        assert_eq!(binding.metadata.name.as_deref(), Some("cairn-ops"));
        assert_eq!(binding.role_ref.name, "cairn-ops");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("cairn", Some("ops")));
        assert_eq!(role_binding("ops").metadata.namespace.as_deref(), Some("ops"));
    }
}
