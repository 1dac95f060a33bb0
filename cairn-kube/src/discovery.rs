//! Discovery: every resource type the API server serves at its preferred version, built-in, custom and
//! aggregated alike, that can be listed, created, read and deleted (so it can be backed up and restored).

use std::fmt;

use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;

mod aggregated;

/// How many API groups are queried at once.
const CONCURRENT_GROUPS: usize = 8;
/// The verbs a type needs to take part in backups and restores.
const REQUIRED_VERBS: [&str; 4] = ["list", "create", "get", "delete"];

/// Discovery failed as a whole (a group failing alone is a [`DiscoveryWarning`]).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server's list of groups could not be read.
    #[error("cannot list the API server's groups: {0}")]
    Groups(#[source] kube::Error),
    /// The core group (`/api/v1`) could not be read.
    #[error("cannot list the core API resources (/api/v1): {0}")]
    Core(#[source] kube::Error),
}

/// One served resource type at its group's preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// The API group; empty for the core group.
    pub group: String,
    /// The version, the group's preferred one.
    pub version: String,
    /// The plural resource name, e.g. `deployments`.
    pub resource: String,
    /// The singular name, e.g. `deployment` (may be empty when the server does not say).
    pub singular: String,
    /// The kind, e.g. `Deployment`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names, e.g. `deploy`.
    pub short_names: Vec<String>,
}

impl ResourceType {
    /// Core `v1` namespaces: served by every API server, so known before discovery runs.
    pub fn namespaces() -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: crate::resources::NAMESPACES.into(),
            singular: "namespace".into(),
            kind: "Namespace".into(),
            namespaced: false,
            short_names: vec!["ns".into()],
        }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `pods` for the core group, else `resource.group` (e.g. `deployments.apps`): the name used in
    /// filters, archive paths and reports.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }

    /// The URL path that lists this type, in `namespace` or across all namespaces.
    pub fn list_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.resource),
            _ => format!("{base}/{}", self.resource),
        }
    }

    /// The URL path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.list_path(namespace))
    }

    /// A `kube` dynamic resource description of this type.
    pub fn api_resource(&self) -> kube::discovery::ApiResource {
        kube::discovery::ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.resource.clone(),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.group_resource())
    }
}

/// A group whose resources could not be read; its types are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryWarning {
    /// The group/version that failed, e.g. `metrics.k8s.io/v1beta1`.
    pub group_version: String,
    /// The server's or the network's reason.
    pub reason: String,
}

/// The result of discovery.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Every usable type: the core group first, then groups in the server's order with `extensions` last.
    pub types: Vec<ResourceType>,
    /// Groups that could not be read.
    pub warnings: Vec<DiscoveryWarning>,
    /// Every version each group serves (`""` is the core group), preferred first.
    pub group_versions: std::collections::BTreeMap<String, Vec<String>>,
}

impl Discovery {
    /// Reads the server's groups and their preferred versions' resources: from its aggregated discovery
    /// documents (two requests), or one document per group where the server has no aggregated discovery.
    pub async fn run(client: &Client) -> Result<Discovery, DiscoveryError> {
        match aggregated::run(client).await? {
            Some(discovery) => Ok(discovery),
            None => Discovery::run_per_group(client).await,
        }
    }

    /// Discovery from the per-group documents: `/api/v1`, `/apis`, then each group's preferred version
    /// (what [`Discovery::run`] falls back to; public so tests can compare the two).
    pub async fn run_per_group(client: &Client) -> Result<Discovery, DiscoveryError> {
        let core = client.list_core_api_resources("v1").await.map_err(DiscoveryError::Core)?;
        let mut discovery = Discovery { types: usable_types("", "v1", &core), ..Default::default() };
        discovery.group_versions.insert(String::new(), vec!["v1".to_owned()]);

        let groups = client.list_api_groups().await.map_err(DiscoveryError::Groups)?;
        for group in &groups.groups {
            let mut versions: Vec<String> = group.preferred_version.iter().map(|v| v.version.clone()).collect();
            for version in &group.versions {
                if !versions.contains(&version.version) {
                    versions.push(version.version.clone());
                }
            }
            discovery.group_versions.insert(group.name.clone(), versions);
        }
        let mut preferred: Vec<(String, String)> = groups
            .groups
            .into_iter()
            .filter_map(|g| {
                let version = g.preferred_version.or_else(|| g.versions.into_iter().next())?;
                Some((g.name, version.version))
            })
            .collect();
        // Velero sorts the deprecated `extensions` group last, so its duplicates of `apps` types lose.
        preferred.sort_by_key(|(group, _)| group == "extensions");
        let results: Vec<_> = stream::iter(preferred)
            .map(|(group, version)| async move {
                let listed = client.list_api_group_resources(&format!("{group}/{version}")).await;
                (group, version, listed)
            })
            .buffered(CONCURRENT_GROUPS)
            .collect()
            .await;
        for (group, version, listed) in results {
            match listed {
                Ok(list) => discovery.types.extend(usable_types(&group, &version, &list)),
                Err(error) => discovery.warnings.push(DiscoveryWarning {
                    group_version: format!("{group}/{version}"),
                    reason: crate::errors::describe(&error),
                }),
            }
        }
        Ok(discovery)
    }

    /// The type serving `group_resource` (`pods`, `deployments.apps`), if any.
    pub fn by_group_resource(&self, group_resource: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.group_resource() == group_resource)
    }
}

fn usable_types(group: &str, version: &str, list: &APIResourceList) -> Vec<ResourceType> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .filter(|r| is_usable(&r.verbs))
        .map(|r| ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: r.name.clone(),
            singular: r.singular_name.clone(),
            kind: r.kind.clone(),
            namespaced: r.namespaced,
            short_names: r.short_names.clone().unwrap_or_default(),
        })
        .collect()
}

/// Whether a type with these verbs can be backed up and restored.
fn is_usable(verbs: &[String]) -> bool {
    REQUIRED_VERBS.iter().all(|verb| verbs.iter().any(|v| v == verb))
}
