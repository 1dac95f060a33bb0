//! What an installation is made of: the typed options `cairn install` turns its flags into, their defaults,
//! and the checks that refuse bad values before any manifest is built.

use cairn_api::server::ServerSettings;
use std::collections::BTreeMap;

use super::{InstallError, Scheduling};
use cairn_kube::{names::is_qualified_name, quantity::is_quantity};

/// The namespace the server, its Secrets, its Lease and its `cairn.dev` objects live in by default.
pub const DEFAULT_NAMESPACE: &str = "cairn";
/// The server's image by default: the release matching this library.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/cairn-dev/cairn-server:", env!("CARGO_PKG_VERSION"));
/// The directory a `local` default location is kept in, inside the server's pod (a mounted volume).
pub const DEFAULT_LOCAL_DIRECTORY: &str = "/var/lib/cairn/storage";
/// The size of the volume a `local` default location gets.
pub const DEFAULT_LOCAL_VOLUME_SIZE: &str = "10Gi";
/// The server's CPU request by default.
pub const DEFAULT_CPU_REQUEST: &str = "100m";
/// The server's memory request by default (a backup or restore runs in about 60 MiB).
pub const DEFAULT_MEMORY_REQUEST: &str = "128Mi";
/// The server's CPU limit by default.
pub const DEFAULT_CPU_LIMIT: &str = "1";
/// The server's memory limit by default.
pub const DEFAULT_MEMORY_LIMIT: &str = "512Mi";
/// The container runtime's CRI socket on each node by default (containerd's), which the image agent talks to.
pub const DEFAULT_RUNTIME_SOCKET: &str = "/run/containerd/containerd.sock";

/// Everything an installation depends on. [`Default`] is what `cairn install` does without flags.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallOptions {
    /// Where the server runs (a DNS-1123 label).
    pub namespace: String,
    /// The server's container image.
    pub image: String,
    /// How many server pods run (one leads at a time).
    pub replicas: i32,
    /// The server container's requests and limits.
    pub resources: ServerResources,
    /// Server flags to set; `None` keeps the server's own default.
    pub server_settings: ServerSettings,
    /// The BackupStorageLocation named `default`, or `None` to create no location.
    pub default_location: Option<DefaultLocation>,
    /// Whether the server may restore Roles and ClusterRoles that grant more than it holds, and bindings to
    /// them: the cluster-wide `bind` and `escalate` rule. With it the server's account can grant itself any
    /// permission (it is cluster-admin-equivalent); without it, restoring such RBAC objects is refused.
    pub restore_rbac: bool,
    /// Annotations on the server's ServiceAccount (for example `eks.amazonaws.com/role-arn` for IAM roles
    /// for service accounts).
    pub service_account_annotations: BTreeMap<String, String>,
    /// Annotations on the server's pods.
    pub pod_annotations: BTreeMap<String, String>,
    /// Where the server's pods may run.
    pub scheduling: Scheduling,
    /// Whether to install the image agent too: a DaemonSet running `cairn image agent` on every node (every
    /// taint tolerated) as root, with the runtime's socket directory mounted from the host, carrying out the
    /// node's ImagePrunes; its ServiceAccount reads workloads cluster-wide, and in the namespace reads
    /// ImagePrunes, writes their status and renews its Lease.
    pub image_agent: bool,
    /// The container runtime's CRI socket on the nodes (an absolute path), for the image agent.
    pub runtime_socket: String,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            replicas: 1,
            resources: ServerResources::default(),
            server_settings: ServerSettings::default(),
            default_location: Some(DefaultLocation::default()),
            restore_rbac: true,
            service_account_annotations: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            scheduling: Scheduling::default(),
            image_agent: false,
            runtime_socket: DEFAULT_RUNTIME_SOCKET.to_owned(),
        }
    }
}

/// CPU and memory for the server container, as Kubernetes quantities (`100m`, `128Mi`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerResources {
    /// CPU request.
    pub cpu_request: String,
    /// Memory request.
    pub memory_request: String,
    /// CPU limit.
    pub cpu_limit: String,
    /// Memory limit.
    pub memory_limit: String,
}

impl Default for ServerResources {
    fn default() -> Self {
        ServerResources {
            cpu_request: DEFAULT_CPU_REQUEST.to_owned(),
            memory_request: DEFAULT_MEMORY_REQUEST.to_owned(),
            cpu_limit: DEFAULT_CPU_LIMIT.to_owned(),
            memory_limit: DEFAULT_MEMORY_LIMIT.to_owned(),
        }
    }
}

/// The location backups go to when they name none.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultLocation {
    /// The S3 bucket, or for `local` the absolute directory inside the server's pod.
    pub bucket: String,
    /// A key prefix inside the bucket.
    pub prefix: Option<String>,
    /// The provider and what it needs.
    pub provider: LocationProvider,
}

impl Default for DefaultLocation {
    fn default() -> Self {
        DefaultLocation {
            bucket: DEFAULT_LOCAL_DIRECTORY.to_owned(),
            prefix: None,
            provider: LocationProvider::Local { volume_size: DEFAULT_LOCAL_VOLUME_SIZE.to_owned() },
        }
    }
}

/// Where a default location keeps its backups.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationProvider {
    /// AWS S3 or an S3-compatible server.
    Aws {
        /// The location's `config`.
        config: AwsConfig,
        /// The text of an AWS credentials file, put in a Secret the location names; `None`: the server's
        /// environment (for example IAM roles for service accounts).
        credentials: Option<String>,
    },
    /// A directory on a ReadWriteOnce volume mounted into the server's pod.
    Local {
        /// The volume's size (a quantity such as `10Gi`).
        volume_size: String,
    },
}

/// The `config` of an `aws` location.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsConfig {
    /// `region`.
    pub region: Option<String>,
    /// `s3Url`: the endpoint of an S3-compatible server.
    pub s3_url: Option<String>,
    /// `profile`: the profile to read in the credentials file.
    pub profile: Option<String>,
    /// `s3ForcePathStyle`, which Velero's guides set for MinIO: accepted and passed on, and changes nothing
    /// (Cairn always sends path-style requests).
    pub s3_force_path_style: Option<String>,
}

impl AwsConfig {
    /// The keys a location's `config` accepts for `aws`.
    pub const KEYS: [&str; 4] = ["region", "s3Url", "profile", "s3ForcePathStyle"];

    /// The config as the location's `config` map entries.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("profile", &self.profile),
            ("region", &self.region),
            ("s3ForcePathStyle", &self.s3_force_path_style),
            ("s3Url", &self.s3_url),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }
}

impl InstallOptions {
    /// Refuses values the cluster would refuse or the server could not use, naming the fix.
    pub fn validate(&self) -> Result<(), InstallError> {
        if !cairn_kube::names::is_valid_label(&self.namespace) {
            return Err(InstallError::Namespace(self.namespace.clone()));
        }
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return Err(InstallError::Image(self.image.clone()));
        }
        if self.replicas < 1 {
            return Err(InstallError::Replicas(self.replicas));
        }
        let resources = &self.resources;
        for (flag, value) in [
            ("--cpu-request", &resources.cpu_request),
            ("--memory-request", &resources.memory_request),
            ("--cpu-limit", &resources.cpu_limit),
            ("--memory-limit", &resources.memory_limit),
        ] {
            check_quantity(flag, value)?;
        }
        // What the server would refuse, refused now, by the server's own parser.
        ServerSettings::from_args(self.server_settings.to_args()).map_err(InstallError::ServerSettings)?;
        for (flag, annotations) in
            [("--sa-annotations", &self.service_account_annotations), ("--pod-annotations", &self.pod_annotations)]
        {
            if let Some(key) = annotations.keys().find(|key| !is_qualified_name(key)) {
                return Err(InstallError::AnnotationKey { flag, key: key.clone() });
            }
        }
        if self.image_agent && !is_socket_path(&self.runtime_socket) {
            return Err(InstallError::RuntimeSocket(self.runtime_socket.clone()));
        }
        match &self.default_location {
            Some(location) => location.validate(self.replicas),
            None => Ok(()),
        }
    }
}

impl DefaultLocation {
    fn validate(&self, replicas: i32) -> Result<(), InstallError> {
        match &self.provider {
            LocationProvider::Aws { config, credentials } => {
                if self.bucket.is_empty() || self.bucket.contains('/') {
                    return Err(InstallError::Bucket(self.bucket.clone()));
                }
                if let Some(s3_url) = &config.s3_url {
                    let scheme = url::Url::parse(s3_url).map(|u| u.scheme().to_owned()).unwrap_or_default();
                    if scheme != "http" && scheme != "https" {
                        return Err(InstallError::S3Url(s3_url.clone()));
                    }
                }
                if credentials.as_ref().is_some_and(|c| c.trim().is_empty()) {
                    return Err(InstallError::EmptyCredentials);
                }
                Ok(())
            }
            LocationProvider::Local { volume_size } => {
                if !self.bucket.starts_with('/') {
                    return Err(InstallError::LocalDirectory(self.bucket.clone()));
                }
                if replicas > 1 {
                    return Err(InstallError::LocalReplicas(replicas));
                }
                check_quantity("--local-volume-size", volume_size)
            }
        }
    }
}

/// An absolute path to a file in a directory other than `/`, without spaces or `..`: the agent mounts the
/// directory from the host.
fn is_socket_path(path: &str) -> bool {
    let path = std::path::Path::new(path);
    path.is_absolute()
        && path.parent().is_some_and(|dir| dir != std::path::Path::new("/"))
        && path.file_name().is_some()
        && !path.components().any(|c| c == std::path::Component::ParentDir)
        && !path.to_string_lossy().contains(char::is_whitespace)
}

fn check_quantity(flag: &'static str, value: &str) -> Result<(), InstallError> {
    if is_quantity(value) { Ok(()) } else { Err(InstallError::Quantity { flag, value: value.to_owned() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_like_kubernetes_reads_them() {
        for good in ["1", "100m", "0.5", "128Mi", "10Gi", "1e3", "2k", "+1"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Mi", "1.2.3", "10GB", "ten", "1 Gi", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn default_options_are_valid() {
        InstallOptions::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag_to_fix() {
        let refused = |change: fn(&mut InstallOptions)| {
            let mut options = InstallOptions::default();
            change(&mut options);
            options.validate().unwrap_err().to_string()
        };
        assert!(refused(|o| o.namespace = "Cairn_NS".into()).contains("--namespace"));
        assert!(refused(|o| o.namespace = "a.b".into()).contains("--namespace"));
        assert!(refused(|o| o.image = "".into()).contains("--image"));
        assert!(refused(|o| o.replicas = 0).contains("--replicas"));
        assert!(refused(|o| o.resources.memory_limit = "512MB".into()).contains("--memory-limit"));
        assert!(refused(|o| o.server_settings.backup_sync_period = "5d".into()).contains("--backup-sync-period"));
        assert!(refused(|o| o.default_location.as_mut().unwrap().bucket = "relative/dir".into()).contains("--bucket"));
        assert!(refused(|o| o.replicas = 2).contains("--replicas"));
        let aws = |bucket: &str, s3_url: Option<&str>| DefaultLocation {
            bucket: bucket.into(),
            prefix: None,
            provider: LocationProvider::Aws {
                config: AwsConfig { s3_url: s3_url.map(Into::into), ..AwsConfig::default() },
                credentials: None,
            },
        };
        let with_location = |location: DefaultLocation| {
            InstallOptions { default_location: Some(location), ..InstallOptions::default() }.validate()
        };
        assert!(with_location(aws("bucket/path", None)).unwrap_err().to_string().contains("--prefix"));
        assert!(with_location(aws("b", Some("minio:9000"))).unwrap_err().to_string().contains("s3Url"));
        with_location(aws("b", Some("http://minio:9000"))).unwrap();
    }

    #[test]
    fn annotation_keys_must_be_qualified_names_naming_the_flag() {
        for good in ["eks.amazonaws.com/role-arn", "prometheus.io/scrape", "a", "iam.gke.io/gcp-service-account"] {
            assert!(is_qualified_name(good), "{good}");
        }
        for bad in ["", "/x", "a/", "-a", "a b", "Bad_Prefix/x", "a/b/c", &"x".repeat(64)] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
        let mut options = InstallOptions::default();
        options.pod_annotations.insert("not valid".into(), "x".into());
        assert!(options.validate().unwrap_err().to_string().contains("--pod-annotations"));
        let mut options = InstallOptions::default();
        options.service_account_annotations.insert("eks.amazonaws.com/role-arn".into(), "arn:aws:iam::1:role/r".into());
        options.validate().unwrap();
    }

    #[test]
    fn the_runtime_socket_must_be_a_file_in_a_directory_the_agent_can_mount() {
        let socket = |runtime_socket: &str| {
            InstallOptions { image_agent: true, runtime_socket: runtime_socket.into(), ..InstallOptions::default() }
                .validate()
        };
        socket(DEFAULT_RUNTIME_SOCKET).unwrap();
        socket("/var/run/crio/crio.sock").unwrap();
        for bad in ["run/containerd.sock", "/containerd.sock", "/run/../containerd.sock", "/run/a b.sock", "/"] {
            assert!(socket(bad).unwrap_err().to_string().contains("--image-agent-runtime-socket"), "{bad}");
        }
        let without_agent = InstallOptions { runtime_socket: "relative".into(), ..InstallOptions::default() };
        without_agent.validate().unwrap();
    }

    #[test]
    fn s3_force_path_style_is_accepted_and_passed_on() {
        let config = AwsConfig { s3_force_path_style: Some("true".into()), ..AwsConfig::default() };
        assert_eq!(config.entries(), [("s3ForcePathStyle", "true")]);
        assert!(AwsConfig::KEYS.contains(&"s3ForcePathStyle"));
    }

    #[test]
    fn only_set_server_flags_are_passed() {
        let flags = ServerSettings { default_backup_ttl: "72h".into(), ..ServerSettings::default() };
        assert_eq!(flags.to_args(), ["--default-backup-ttl=72h"]);
    }
}
