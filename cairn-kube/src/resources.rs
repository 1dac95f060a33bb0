//! Well-known resource types, by their group-resource names (`deployments.apps` style, core types bare):
//! the one place Cairn spells the types it treats specially.

/// Namespaces.
pub const NAMESPACES: &str = "namespaces";
/// Pods.
pub const PODS: &str = "pods";
/// Services.
pub const SERVICES: &str = "services";
/// ServiceAccounts.
pub const SERVICE_ACCOUNTS: &str = "serviceaccounts";
/// PersistentVolumeClaims.
pub const PVCS: &str = "persistentvolumeclaims";
/// PersistentVolumes.
pub const PVS: &str = "persistentvolumes";
/// Jobs.
pub const JOBS: &str = "jobs.batch";
/// Secrets.
pub const SECRETS: &str = "secrets";
/// ConfigMaps.
pub const CONFIG_MAPS: &str = "configmaps";
/// RoleBindings.
pub const ROLE_BINDINGS: &str = "rolebindings.rbac.authorization.k8s.io";
/// ClusterRoleBindings.
pub const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";
/// ClusterRoles.
pub const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
/// CustomResourceDefinitions.
pub const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
