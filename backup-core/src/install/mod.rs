//! Installing Cairn's server: the manifests (CRDs, Namespace, RBAC, credentials, default location,
//! Deployment, and with `--image-agent` the image agent's DaemonSet and access) built from typed options
//! without I/O, and their server-side apply to a cluster.
//!
//! [`manifests`] is what `cairn install --dry-run -o yaml` prints and what `deploy/manifests/cairn.yaml` holds;
//! [`apply`] sends them: most are server-side applied, so running it again brings them back to what it builds,
//! but the default location and its credentials Secret are only created when missing, so the user's changes
//! to them (a location set ReadOnly, another location made the default) survive. The Helm chart in
//! `deploy/helm/cairn/` takes its CRDs and RBAC rules from here too.

mod apply;
mod image_agent;
mod location;
mod options;
mod rbac;
mod readiness;
mod scheduling;
mod server;

#[cfg(test)]
mod chart_files;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Resource,
    api::{ApiResource, DynamicObject},
};
use serde::Serialize;

pub use apply::{Applied, FIELD_MANAGER, Outcome, apply};
pub use image_agent::{
    IMAGE_AGENT_BINARY, IMAGE_AGENT_NAME, NODE_NAME_VARIABLE, image_agent_cluster_role_name, image_agent_cluster_rules,
    image_agent_namespace_rules,
};
pub use location::{CREDENTIALS_KEY, CREDENTIALS_SECRET, DEFAULT_LOCATION_NAME};
pub use options::{
    AwsConfig, DEFAULT_CPU_LIMIT, DEFAULT_CPU_REQUEST, DEFAULT_IMAGE, DEFAULT_LOCAL_DIRECTORY,
    DEFAULT_LOCAL_VOLUME_SIZE, DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST, DEFAULT_NAMESPACE, DEFAULT_RUNTIME_SOCKET,
    DefaultLocation, InstallOptions, LocationProvider, ServerResources,
};
pub use rbac::{cluster_role_name, cluster_rules, namespace_rules, rbac_restore_rules};
pub use readiness::wait_until_available;
pub use scheduling::Scheduling;
pub use server::STORAGE_CLAIM;

/// The name of the server's ServiceAccount, Role, RoleBinding and Deployment.
pub const SERVER_NAME: &str = "cairn";

/// Why an installation could not be built or applied. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The namespace is not a DNS-1123 label.
    #[error(
        "invalid --namespace {0:?}: use lowercase letters, digits and '-', starting and ending with a letter or \
         digit, at most 63 characters"
    )]
    Namespace(String),
    /// The image reference is empty or has spaces.
    #[error("invalid --image {0:?}: give an image reference such as {DEFAULT_IMAGE}")]
    Image(String),
    /// Fewer than one replica.
    #[error("invalid --replicas {0}: at least one server pod must run")]
    Replicas(i32),
    /// A CPU or memory amount is not a Kubernetes quantity.
    #[error("invalid {flag} {value:?}: write a Kubernetes quantity such as 500m, 1, 128Mi or 10Gi")]
    Quantity {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// A server setting would be refused by the server.
    #[error("{0}")]
    ServerSettings(String),
    /// An annotation key is not a Kubernetes qualified name.
    #[error(
        "invalid annotation key {key:?} in {flag}: write [PREFIX/]NAME, PREFIX a DNS subdomain such as \
         eks.amazonaws.com and NAME at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter \
         or digit"
    )]
    AnnotationKey {
        /// The flag.
        flag: &'static str,
        /// The key given.
        key: String,
    },
    /// A `--node-selector` entry is not `KEY=VALUE` with a label key and value.
    #[error(
        "invalid --node-selector entry {0:?}: write KEY=VALUE,... with label keys and values (such as \
         kubernetes.io/os=linux)"
    )]
    NodeSelector(String),
    /// A `--tolerations` entry is not a taint the API server would accept.
    #[error(
        "invalid --tolerations entry {0:?}: write KEY[=VALUE][:EFFECT],... as `kubectl taint` does, KEY a label key \
         and EFFECT NoSchedule, PreferNoSchedule or NoExecute (such as dedicated=backup:NoSchedule)"
    )]
    Toleration(String),
    /// An S3 bucket name is empty or holds a path.
    #[error("invalid --bucket {0:?}: give the S3 bucket's name alone, and the path inside it with --prefix")]
    Bucket(String),
    /// The `s3Url` config is not an http(s) URL.
    #[error("invalid s3Url {0:?} in --backup-location-config: give the endpoint as http://HOST:PORT or https://HOST")]
    S3Url(String),
    /// The credentials file has no content.
    #[error(
        "the --secret-file is empty: give an AWS credentials file ([default] with aws_access_key_id and \
         aws_secret_access_key)"
    )]
    EmptyCredentials,
    /// A local location's directory is relative.
    #[error(
        "invalid --bucket {0:?} for --provider local: give an absolute directory such as {DEFAULT_LOCAL_DIRECTORY}"
    )]
    LocalDirectory(String),
    /// A local location with more than one replica.
    #[error(
        "--replicas {0} cannot share a local location: its volume is ReadWriteOnce, so run one replica or use \
         --provider aws"
    )]
    LocalReplicas(i32),
    /// The image agent's runtime socket is not an absolute path to a file in a directory below `/`.
    #[error(
        "invalid --image-agent-runtime-socket {0:?}: give the absolute path of the container runtime's CRI socket on \
         the nodes, such as {DEFAULT_RUNTIME_SOCKET} (containerd) or /var/run/crio/crio.sock (CRI-O)"
    )]
    RuntimeSocket(String),
    /// A manifest could not be turned into JSON (a bug: every manifest is built from typed objects).
    #[error("cannot serialize the {kind} manifest: {problem}")]
    Serialize {
        /// The kind.
        kind: String,
        /// The serializer's reason.
        problem: serde_json::Error,
    },
    /// The API server refused an object.
    #[error("applying {kind} {name} failed: {problem}")]
    Apply {
        /// The kind.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// The server's reason, with the fix when it is known.
        problem: String,
    },
    /// A CRD did not become Established.
    #[error("CRD {0} was not Established within 60 s: see its conditions with `kubectl get crd {0} -o yaml`")]
    NotEstablished(String),
    /// Watching an object for readiness failed.
    #[error("watching {what} failed: {problem}")]
    Watch {
        /// The object.
        what: String,
        /// The reason.
        problem: String,
    },
    /// The server's Deployment did not roll out in time.
    #[error(
        "the server was not available within {seconds} s ({pods}): see `kubectl -n {namespace} describe deployment \
         {SERVER_NAME}` and its pods' logs"
    )]
    NotAvailable {
        /// The server's namespace.
        namespace: String,
        /// How long was waited.
        seconds: u64,
        /// What each pod of the current version waits for.
        pods: String,
    },
    /// A pod of the server's current version cannot start without a change.
    #[error(
        "the server's pod {namespace}/{pod} cannot start: {problem}\nFix the cause (the image, the settings) and run \
         `cairn install` again; `kubectl -n {namespace} describe pod {pod}` shows more"
    )]
    ServerCannotStart {
        /// The server's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container's waiting reason and message, and its last log lines.
        problem: String,
    },
}

/// One object to install: its API type, the object, and whether an existing one is updated or kept; ready
/// to print or apply.
#[derive(Debug, Clone)]
pub struct Manifest {
    resource: ApiResource,
    object: DynamicObject,
    create_only: bool,
}

impl Manifest {
    /// An object that installing applies: an existing one is brought back to this.
    fn of<K: Resource<DynamicType = ()> + Serialize>(object: &K) -> Result<Manifest, InstallError> {
        let resource = ApiResource::erase::<K>(&());
        let error = |problem| InstallError::Serialize { kind: resource.kind.clone(), problem };
        let value = serde_json::to_value(object).map_err(error)?;
        let object = serde_json::from_value(value).map_err(error)?;
        Ok(Manifest { resource, object, create_only: false })
    }

    /// An object that installing creates when it is missing and otherwise leaves as it is: it belongs to the
    /// user once it exists.
    fn create_only<K: Resource<DynamicType = ()> + Serialize>(object: &K) -> Result<Manifest, InstallError> {
        Ok(Manifest { create_only: true, ..Manifest::of(object)? })
    }

    /// Whether installing only creates this object when it is missing, keeping an existing one unchanged
    /// (the default location and its credentials Secret); otherwise it is server-side applied.
    pub fn is_create_only(&self) -> bool {
        self.create_only
    }

    /// The object's API type (group, version, kind, plural).
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// The object.
    pub fn object(&self) -> &DynamicObject {
        &self.object
    }

    /// The object's kind.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object's namespace; `None` for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        self.object.metadata.namespace.as_deref()
    }

    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(namespace) => format!("{namespace}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }

    fn is_crd(&self) -> bool {
        self.resource.kind == "CustomResourceDefinition"
    }
}

impl Serialize for Manifest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.object.serialize(serializer)
    }
}

/// The labels on every object Cairn installs (the CRDs excepted: they are exactly `deploy/crds/`).
fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), SERVER_NAME.to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
    ])
}

/// Metadata with the installation's labels.
fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// Every object of an installation, in the order they are applied: CRDs, Namespace, ServiceAccount, RBAC,
/// the credentials Secret (only with a credentials file), the local location's claim (only for `local`),
/// the Deployment, the image agent's ServiceAccount, RBAC and DaemonSet (only with
/// [`InstallOptions::image_agent`]), and the default BackupStorageLocation. The Secret and the location are create-only
/// ([`Manifest::is_create_only`]). Validates the options first; does no I/O.
pub fn manifests(options: &InstallOptions) -> Result<Vec<Manifest>, InstallError> {
    options.validate()?;
    let namespace = options.namespace.as_str();
    let mut list = Vec::new();
    for crd in cairn_api::crds() {
        list.push(Manifest::of(&crd)?);
    }
    list.push(Manifest::of(&server::namespace(namespace))?);
    list.push(Manifest::of(&rbac::service_account(namespace, &options.service_account_annotations))?);
    list.push(Manifest::of(&rbac::cluster_role(namespace, options.restore_rbac))?);
    list.push(Manifest::of(&rbac::cluster_role_binding(namespace))?);
    list.push(Manifest::of(&rbac::role(namespace))?);
    list.push(Manifest::of(&rbac::role_binding(namespace))?);
    if let Some(location) = &options.default_location {
        if let Some(secret) = location::credentials_secret(namespace, location) {
            list.push(Manifest::create_only(&secret)?);
        }
        if let Some(claim) = server::storage_claim(namespace, location) {
            list.push(Manifest::of(&claim)?);
        }
    }
    list.push(Manifest::of(&server::deployment(options))?);
    if options.image_agent {
        list.extend(image_agent::manifests(options)?);
    }
    if let Some(location) = &options.default_location {
        list.push(Manifest::create_only(&location::backup_storage_location(namespace, location))?);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(list: &[Manifest]) -> Vec<&str> {
        list.iter().map(Manifest::kind).collect()
    }

    #[test]
    fn crds_come_first_and_the_location_last() {
        let list = manifests(&InstallOptions::default()).unwrap();
        let crd_count = cairn_api::crds().len();
        assert!(list[..crd_count].iter().all(|m| m.kind() == "CustomResourceDefinition"));
        assert_eq!(
            kinds(&list[crd_count..]),
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "PersistentVolumeClaim",
                "Deployment",
                "BackupStorageLocation"
            ]
        );
    }

    #[test]
    fn every_namespaced_object_is_in_the_chosen_namespace() {
        let options = InstallOptions { namespace: "backups".into(), ..InstallOptions::default() };
        for manifest in manifests(&options).unwrap() {
            let cluster_scoped = matches!(
                manifest.kind(),
                "CustomResourceDefinition" | "Namespace" | "ClusterRole" | "ClusterRoleBinding"
            );
            let expected = if cluster_scoped { None } else { Some("backups") };
            assert_eq!(manifest.namespace(), expected, "{}", manifest.kind());
        }
    }

    #[test]
    fn image_agent_objects_come_after_the_deployment_and_before_the_location() {
        let options = InstallOptions { namespace: "ops".into(), image_agent: true, ..InstallOptions::default() };
        let list = manifests(&options).unwrap();
        let crd_count = cairn_api::crds().len();
        assert_eq!(
            kinds(&list[crd_count..]),
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "PersistentVolumeClaim",
                "Deployment",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "DaemonSet",
                "BackupStorageLocation"
            ]
        );
        let mut names: Vec<String> = list.iter().map(|m| format!("{}/{}", m.kind(), m.qualified_name())).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), list.len(), "two objects share a name: {names:?}");
        let without = manifests(&InstallOptions { image_agent: false, ..options }).unwrap();
        assert!(without.iter().all(|m| m.kind() != "DaemonSet" && !m.name().contains("image-agent")));
    }

    #[test]
    fn no_location_and_no_volume_without_a_default_location() {
        let options = InstallOptions { default_location: None, ..InstallOptions::default() };
        let list = manifests(&options).unwrap();
        let kinds = kinds(&list);
        assert!(!kinds.contains(&"BackupStorageLocation") && !kinds.contains(&"PersistentVolumeClaim"));
        assert!(!kinds.contains(&"Secret"));
    }

    #[test]
    fn credentials_add_a_secret_before_the_deployment() {
        let location = DefaultLocation {
            bucket: "b".into(),
            prefix: None,
            provider: LocationProvider::Aws {
                config: AwsConfig::default(),
                credentials: Some("[default]\naws_access_key_id=a\naws_secret_access_key=b\n".into()),
            },
        };
        let options = InstallOptions { default_location: Some(location), ..InstallOptions::default() };
        let list = manifests(&options).unwrap();
        let position = |kind: &str| list.iter().position(|m| m.kind() == kind).unwrap();
        assert!(position("Secret") < position("Deployment"));
    }

    #[test]
    fn server_flags_become_container_args() {
        let options = InstallOptions {
            server_settings: cairn_api::server::ServerSettings {
                backup_sync_period: "5m".into(),
                ..Default::default()
            },
            ..InstallOptions::default()
        };
        let list = manifests(&options).unwrap();
        let deployment = list.iter().find(|m| m.kind() == "Deployment").unwrap();
        let args = &deployment.object().data["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args, &serde_json::json!(["--backup-sync-period=5m"]));
    }

    #[test]
    fn only_the_default_location_and_its_secret_are_create_only() {
        let location = DefaultLocation {
            bucket: "b".into(),
            prefix: None,
            provider: LocationProvider::Aws {
                config: AwsConfig::default(),
                credentials: Some("[default]\naws_access_key_id=a\naws_secret_access_key=b\n".into()),
            },
        };
        let options = InstallOptions { default_location: Some(location), ..InstallOptions::default() };
        let list = manifests(&options).unwrap();
        let create_only: Vec<&str> = list.iter().filter(|m| m.is_create_only()).map(Manifest::kind).collect();
        assert_eq!(create_only, ["Secret", "BackupStorageLocation"]);
    }

    #[test]
    fn no_rbac_restore_leaves_bind_and_escalate_out_of_the_cluster_role() {
        let rules = |restore_rbac: bool| {
            let options = InstallOptions { restore_rbac, ..InstallOptions::default() };
            let list = manifests(&options).unwrap();
            let role = list.iter().find(|m| m.kind() == "ClusterRole").unwrap();
            role.object().data["rules"].to_string()
        };
        assert!(rules(true).contains("escalate"));
        assert!(!rules(false).contains("escalate") && !rules(false).contains("bind"));
    }

    #[test]
    fn invalid_options_build_nothing() {
        let options = InstallOptions { namespace: "Bad".into(), ..InstallOptions::default() };
        assert!(matches!(manifests(&options), Err(InstallError::Namespace(_))));
    }
}
