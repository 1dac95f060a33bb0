//! The server's workload: its Namespace, the Deployment running `backup-server`, and the volume a `local`
//! default location lives on.

use cairn_api::server::{NAMESPACE_VARIABLE, POD_NAME_VARIABLE};
use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
            Namespace, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
            PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{DefaultLocation, InstallOptions, LocationProvider, SERVER_NAME, labels, meta, options::ServerResources};

/// The claim a `local` default location's volume comes from.
pub const STORAGE_CLAIM: &str = "cairn-storage";
/// The user and group the server runs as (distroless `nonroot`).
pub(super) const SERVER_USER: i64 = 65532;

/// The namespace the server lives in.
pub(super) fn namespace(name: &str) -> Namespace {
    Namespace { metadata: meta(name, None), ..Namespace::default() }
}

/// The claim holding a `local` default location, or `None` for other locations.
pub(super) fn storage_claim(namespace: &str, location: &DefaultLocation) -> Option<PersistentVolumeClaim> {
    let LocationProvider::Local { volume_size } = &location.provider else { return None };
    Some(PersistentVolumeClaim {
        metadata: meta(STORAGE_CLAIM, Some(namespace)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(volume_size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

/// The labels that select the server's pods.
fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), SERVER_NAME.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "server".to_owned()),
    ])
}

/// The variable `name` set from the pod's field `field_path` (the downward API).
pub(super) fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn probe(path: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

fn resources(resources: &ServerResources) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(&resources.cpu_request, &resources.memory_request)),
        limits: Some(pair(&resources.cpu_limit, &resources.memory_limit)),
        ..ResourceRequirements::default()
    }
}

fn volume(name: &str, claim: Option<&str>) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: claim.is_none().then(EmptyDirVolumeSource::default),
        persistent_volume_claim: claim.map(|claim_name| PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.to_owned(),
            ..PersistentVolumeClaimVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.to_owned(), mount_path: path.to_owned(), ..VolumeMount::default() }
}

/// The server's Deployment: non-root, read-only root file system, the namespace and pod name from the
/// downward API, probes on the metrics port, the options' pod annotations.
pub(super) fn deployment(options: &InstallOptions) -> Deployment {
    // The root file system is read-only: temporary files go to an emptyDir, a local location to its claim.
    let mut volumes = vec![volume("tmp", None)];
    let mut mounts = vec![mount("tmp", "/tmp")];
    let local = options.default_location.as_ref().filter(|l| matches!(l.provider, LocationProvider::Local { .. }));
    if let Some(location) = local {
        volumes.push(volume("storage", Some(STORAGE_CLAIM)));
        mounts.push(mount("storage", &location.bucket));
    }
    let args = options.server_settings.to_args();
    let container = Container {
        name: "cairn-server".to_owned(),
        image: Some(options.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: (!args.is_empty()).then_some(args),
        env: Some(vec![
            field_env(NAMESPACE_VARIABLE, "metadata.namespace"),
            field_env(POD_NAME_VARIABLE, "metadata.name"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: i32::from(options.server_settings.metrics_port()),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 20)),
        readiness_probe: Some(probe("/readyz", 10)),
        resources: Some(resources(&options.resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(SERVER_NAME.to_owned()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SERVER_USER),
            run_as_group: Some(SERVER_USER),
            // The local location's volume is writable by the server's group.
            fs_group: Some(SERVER_USER),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        node_selector: (!options.scheduling.node_selector.is_empty()).then(|| options.scheduling.node_selector.clone()),
        tolerations: (!options.scheduling.tolerations.is_empty()).then(|| options.scheduling.tolerations.clone()),
        ..PodSpec::default()
    };
    let mut pod_labels = labels();
    pod_labels.extend(selector());
    Deployment {
        metadata: meta(SERVER_NAME, Some(&options.namespace)),
        spec: DeploymentSpec {
            replicas: Some(options.replicas),
            selector: LabelSelector { match_labels: Some(selector()), ..LabelSelector::default() },
            // A ReadWriteOnce volume can be mounted by one pod only: the old pod goes before the new one comes.
            strategy: local.map(|_| DeploymentStrategy { type_: Some("Recreate".to_owned()), rolling_update: None }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: (!options.pod_annotations.is_empty()).then(|| options.pod_annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::AwsConfig;
    use cairn_api::server::DEFAULT_METRICS_PORT;

    fn container(deployment: &Deployment) -> Container {
        deployment.spec.clone().template.spec.unwrap().containers.remove(0)
    }

    #[test]
    fn server_runs_non_root_with_a_read_only_root_filesystem() {
        let deployment = deployment(&InstallOptions::default());
        let pod = deployment.spec.clone().template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        let security = container(&deployment).security_context.unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    }

    #[test]
    fn server_learns_its_namespace_and_pod_name_from_the_downward_api() {
        let env = container(&deployment(&InstallOptions::default())).env.unwrap();
        let field = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.clone())
                .unwrap()
                .field_ref
                .unwrap()
                .field_path
        };
        assert_eq!(field("CAIRN_NAMESPACE"), "metadata.namespace");
        assert_eq!(field("POD_NAME"), "metadata.name");
    }

    #[test]
    fn probes_and_metrics_use_the_named_port() {
        let container = container(&deployment(&InstallOptions::default()));
        assert_eq!(container.ports.unwrap()[0].container_port, i32::from(DEFAULT_METRICS_PORT));
        let path = |probe: Option<Probe>| probe.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(container.liveness_probe), "/healthz");
        assert_eq!(path(container.readiness_probe), "/readyz");
        assert!(container.resources.unwrap().limits.unwrap().contains_key("memory"));
    }

    #[test]
    fn local_location_is_mounted_from_its_claim_and_replaced_not_rolled() {
        let options = InstallOptions::default();
        let deployment = deployment(&options);
        let spec = deployment.spec.clone();
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let mounts = container(&deployment).volume_mounts.unwrap();
        let location = options.default_location.as_ref().unwrap();
        assert!(mounts.iter().any(|m| m.name == "storage" && m.mount_path == location.bucket));
        assert!(storage_claim("cairn", location).is_some());
    }

    #[test]
    fn pod_annotations_go_on_the_pod_template_only() {
        let plain = deployment(&InstallOptions::default());
        assert!(plain.spec.template.metadata.unwrap().annotations.is_none());
        let annotations = BTreeMap::from([("prometheus.io/scrape".to_owned(), "true".to_owned())]);
        let options = InstallOptions { pod_annotations: annotations.clone(), ..InstallOptions::default() };
        let annotated = deployment(&options);
        assert_eq!(annotated.spec.template.metadata.unwrap().annotations, Some(annotations));
        assert!(annotated.metadata.annotations.is_none());
    }

    #[test]
    fn s3_location_needs_no_volume() {
        let location = DefaultLocation {
            bucket: "backups".into(),
            prefix: None,
            provider: LocationProvider::Aws { config: AwsConfig::default(), credentials: None },
        };
        assert!(storage_claim("cairn", &location).is_none());
        let options = InstallOptions { default_location: Some(location), ..InstallOptions::default() };
        let deployment = deployment(&options);
        assert!(deployment.spec.strategy.is_none());
        assert!(container(&deployment).volume_mounts.unwrap().iter().all(|m| m.name != "storage"));
    }
}
