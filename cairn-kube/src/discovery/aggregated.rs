//! Discovery in two requests: the API server's aggregated discovery documents (`apidiscovery.k8s.io/v2`,
//! served since Kubernetes 1.26 and stable since 1.30) describe every group, version and resource of `/api`
//! and `/apis` at once. The per-group documents cost one request per group, each on a connection of its
//! own at first: about 50 ms of a backup's fixed cost on a 2-core machine, against a few for these two.

use kube::{Client, core::discovery::v2::APIGroupDiscoveryList};

use super::{Discovery, DiscoveryError, DiscoveryWarning, ResourceType, is_usable};

/// What `freshness` says of a version whose aggregated API server did not answer: its resources are the
/// last ones known, if any, and cannot be listed.
const STALE: &str = "Stale";

/// Reads both documents at once. `Ok(None)` when the server does not serve aggregated discovery (it answers
/// with the per-group documents' index instead, which holds no `items`): the caller falls back to them.
pub(super) async fn run(client: &Client) -> Result<Option<Discovery>, DiscoveryError> {
    let (core, groups) =
        futures::future::join(client.list_core_api_versions_aggregated(), client.list_api_groups_aggregated()).await;
    let core = match core {
        Ok(core) => core,
        // An API server too old to know the media type may refuse it rather than fall back to plain JSON.
        Err(kube::Error::Api(_)) => return Ok(None),
        Err(error) => return Err(DiscoveryError::Core(error)),
    };
    let groups = match groups {
        Ok(groups) => groups,
        Err(kube::Error::Api(_)) => return Ok(None),
        Err(error) => return Err(DiscoveryError::Groups(error)),
    };
    if core.items.is_empty() || groups.items.is_empty() {
        return Ok(None);
    }
    Ok(Some(discovery(core, groups)))
}

/// The usable types of both documents at each group's preferred version (the first listed), the core group
/// first and `extensions` last; a stale preferred version is a warning and its types are left out.
fn discovery(core: APIGroupDiscoveryList, groups: APIGroupDiscoveryList) -> Discovery {
    let mut discovery = Discovery::default();
    let mut groups: Vec<_> = core
        .items
        .into_iter()
        .map(|g| (String::new(), g))
        .chain(
            groups.items.into_iter().map(|g| (g.metadata.as_ref().and_then(|m| m.name.clone()).unwrap_or_default(), g)),
        )
        .collect();
    // Velero sorts the deprecated `extensions` group last, so its duplicates of `apps` types lose.
    groups.sort_by_key(|(name, _)| name == "extensions");
    for (group, document) in groups {
        let versions: Vec<String> = document.versions.iter().filter_map(|v| v.version.clone()).collect();
        let Some(preferred) = document.versions.into_iter().find(|v| v.version.is_some()) else { continue };
        let version = preferred.version.clone().unwrap_or_default();
        discovery.group_versions.insert(group.clone(), versions);
        if preferred.freshness.as_deref() == Some(STALE) {
            let group_version = if group.is_empty() { version } else { format!("{group}/{version}") };
            discovery.warnings.push(DiscoveryWarning {
                group_version,
                reason:
                    "the API server marks its discovery stale: the aggregated API server serving it does not answer"
                        .into(),
            });
            continue;
        }
        discovery.types.extend(preferred.resources.into_iter().filter_map(|r| {
            let resource = r.resource?;
            if resource.contains('/') || !is_usable(&r.verbs) {
                return None;
            }
            Some(ResourceType {
                group: group.clone(),
                version: version.clone(),
                resource,
                singular: r.singular_resource.unwrap_or_default(),
                kind: r.response_kind.and_then(|k| k.kind).unwrap_or_default(),
                namespaced: r.scope.as_deref() == Some("Namespaced"),
                short_names: r.short_names,
            })
        }));
    }
    discovery
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: serde_json::Value) -> APIGroupDiscoveryList {
        serde_json::from_value(json).unwrap()
    }

    fn resource(name: &str, kind: &str, scope: &str, verbs: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "resource": name, "responseKind": {"group": "", "version": "", "kind": kind}, "scope": scope,
            "singularResource": name.trim_end_matches('s'), "verbs": verbs, "shortNames": ["x"]
        })
    }

    const ALL: [&str; 6] = ["create", "delete", "get", "list", "patch", "watch"];

    #[test]
    fn preferred_versions_give_usable_types_core_first_and_extensions_last() {
        let core = list(serde_json::json!({"items": [{"metadata": {}, "versions": [{"version": "v1", "resources": [
            resource("pods", "Pod", "Namespaced", &ALL),
            resource("bindings", "Binding", "Namespaced", &["create"]),
        ]}]}]}));
        let groups = list(serde_json::json!({"items": [
            {"metadata": {"name": "extensions"}, "versions": [{"version": "v1beta1", "resources": [
                resource("deployments", "Deployment", "Namespaced", &ALL)]}]},
            {"metadata": {"name": "apps"}, "versions": [
                {"version": "v1", "resources": [resource("deployments", "Deployment", "Namespaced", &ALL)]},
                {"version": "v1beta2", "resources": [resource("replicasets", "ReplicaSet", "Namespaced", &ALL)]}]},
            {"metadata": {"name": "storage.k8s.io"}, "versions": [{"version": "v1", "resources": [
                resource("storageclasses", "StorageClass", "Cluster", &ALL)]}]},
        ]}));
        let d = discovery(core, groups);
        let names: Vec<String> = d.types.iter().map(|t| format!("{}/{}", t.api_version(), t.resource)).collect();
        assert_eq!(
            names,
            ["v1/pods", "apps/v1/deployments", "storage.k8s.io/v1/storageclasses", "extensions/v1beta1/deployments"]
        );
        assert_eq!(d.types[0].kind, "Pod");
        assert!(d.types[0].namespaced);
        assert!(!d.types[2].namespaced, "a Cluster-scoped type is not namespaced");
        assert_eq!(d.types[0].short_names, ["x"]);
        assert_eq!(d.group_versions["apps"], ["v1", "v1beta2"]);
        assert_eq!(d.group_versions[""], ["v1"]);
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn a_stale_preferred_version_is_a_warning_and_its_types_are_left_out() {
        let core = list(serde_json::json!({"items": [{"versions": [{"version": "v1", "resources": [
            resource("pods", "Pod", "Namespaced", &ALL)]}]}]}));
        let groups = list(serde_json::json!({"items": [
            {"metadata": {"name": "metrics.example.com"}, "versions": [{"version": "v1", "freshness": "Stale",
                "resources": [resource("samples", "Sample", "Namespaced", &ALL)]}]},
        ]}));
        let d = discovery(core, groups);
        assert_eq!(d.types.len(), 1);
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].group_version, "metrics.example.com/v1");
        assert!(d.warnings[0].reason.contains("does not answer"), "{}", d.warnings[0].reason);
    }

    #[test]
    fn an_index_of_groups_without_items_reads_as_no_aggregated_discovery() {
        // What a server without aggregated discovery answers under plain JSON: `groups`, not `items`.
        let legacy =
            list(serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps"}]}));
        assert!(legacy.items.is_empty());
    }
}
