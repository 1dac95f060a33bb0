//! The image agent (`cairn install --image-agent`): a DaemonSet running `cairn image agent` on every node,
//! which talks CRI to the node's container runtime and carries out the node's ImagePrunes, with its
//! ServiceAccount and the access it needs.
//!
//! Its access is narrow: cluster-wide it only reads the objects that name images (pods and the workloads and
//! revisions that can bring an image back); in the Cairn namespace it reads ImagePrunes, writes their status
//! and keeps its Lease. It creates nothing but its Lease and deletes nothing through the API server. On the
//! node it runs as root (uid 0), only so that it can open the runtime's root-owned socket: every capability
//! is dropped, privilege escalation is off, its root file system is read-only, and the one host path it
//! mounts is the socket's directory, read-only.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, DaemonSetSpec},
        core::v1::{
            Capabilities, Container, HostPathVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
            ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccount, Toleration, Volume, VolumeMount,
        },
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
    },
};

use super::{InstallError, InstallOptions, Manifest, SERVER_NAME, labels, meta, rbac::rule, server::field_env};
use cairn_api::GROUP;

/// The name of the image agent's ServiceAccount, Role, RoleBinding and DaemonSet.
pub const IMAGE_AGENT_NAME: &str = "cairn-image-agent";
/// Where the `cairn` binary is in Cairn's image (`deploy/Dockerfile`), beside `backup-server`: the image
/// agent's DaemonSet runs it.
pub const IMAGE_AGENT_BINARY: &str = "/usr/local/bin/cairn";
/// The variable the image agent reads its node's name from (`cairn image agent --node-name`), set from the
/// pod's `spec.nodeName`.
pub const NODE_NAME_VARIABLE: &str = "NODE_NAME";
/// The agent's CPU request: it is idle but for its Lease and the rare prune.
const CPU_REQUEST: &str = "10m";
/// The agent's memory request.
const MEMORY_REQUEST: &str = "32Mi";
/// The agent's memory limit.
const MEMORY_LIMIT: &str = "128Mi";
/// The volume holding the runtime's socket directory.
const RUNTIME_VOLUME: &str = "runtime";

/// The name of the image agent's ClusterRole and ClusterRoleBinding for an installation in `namespace`. A
/// namespace has no `:`, so this never equals the server's [`cluster_role_name`](super::cluster_role_name)
/// of another installation (`cairn-image-agent-ops` would be the server's name in namespace
/// `image-agent-ops`).
pub fn image_agent_cluster_role_name(namespace: &str) -> String {
    format!("{IMAGE_AGENT_NAME}:{namespace}")
}

/// The agent's cluster-wide rules: read only, on what names images a prune must keep.
pub fn image_agent_cluster_rules() -> Vec<PolicyRule> {
    let read = ["get", "list", "watch"];
    vec![
        // Images running or about to run, and those a scale-up would start.
        rule(&[""], &["pods", "replicationcontrollers"], &read),
        // Workloads and their rollback history (old ReplicaSets, ControllerRevisions).
        rule(&["apps"], &["deployments", "replicasets", "daemonsets", "statefulsets", "controllerrevisions"], &read),
        rule(&["batch"], &["jobs", "cronjobs"], &read),
        // Its own node, checked once at start so that a wrong NODE_NAME is an error, not an idle agent.
        rule(&[""], &["nodes"], &["get"]),
    ]
}

/// The agent's rules in the Cairn namespace: its node's ImagePrunes (read, and their status written) and
/// its Lease `image-agent-<node>`, which it creates once and then renews.
pub fn image_agent_namespace_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[GROUP], &["imageprunes"], &["get", "list", "watch"]),
        rule(&[GROUP], &["imageprunes/status"], &["get", "patch", "update"]),
        rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update", "patch"]),
    ]
}

/// The agent's objects, in the order they are applied: ServiceAccount, ClusterRole, ClusterRoleBinding,
/// Role, RoleBinding, DaemonSet.
pub(super) fn manifests(options: &InstallOptions) -> Result<Vec<Manifest>, InstallError> {
    let namespace = options.namespace.as_str();
    let cluster_role_name = image_agent_cluster_role_name(namespace);
    Ok(vec![
        Manifest::of(&ServiceAccount { metadata: meta(IMAGE_AGENT_NAME, Some(namespace)), ..Default::default() })?,
        Manifest::of(&ClusterRole {
            metadata: meta(&cluster_role_name, None),
            rules: Some(image_agent_cluster_rules()),
            ..ClusterRole::default()
        })?,
        Manifest::of(&ClusterRoleBinding {
            metadata: meta(&cluster_role_name, None),
            role_ref: role_ref("ClusterRole", &cluster_role_name),
            subjects: Some(vec![subject(namespace)]),
        })?,
        Manifest::of(&Role {
            metadata: meta(IMAGE_AGENT_NAME, Some(namespace)),
            rules: Some(image_agent_namespace_rules()),
        })?,
        Manifest::of(&RoleBinding {
            metadata: meta(IMAGE_AGENT_NAME, Some(namespace)),
            role_ref: role_ref("Role", IMAGE_AGENT_NAME),
            subjects: Some(vec![subject(namespace)]),
        })?,
        Manifest::of(&daemon_set(options))?,
    ])
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".to_owned()), kind: kind.to_owned(), name: name.to_owned() }
}

fn subject(namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: IMAGE_AGENT_NAME.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }
}

/// The labels that select the agent's pods.
fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), SERVER_NAME.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "image-agent".to_owned()),
    ])
}

/// The agent's command: `cairn image agent` on the options' runtime socket, in the installation's namespace.
/// Its node comes from [`NODE_NAME_VARIABLE`].
fn command(options: &InstallOptions) -> Vec<String> {
    let endpoint = format!("unix://{}", options.runtime_socket);
    [IMAGE_AGENT_BINARY, "image", "agent", "--runtime-endpoint", &endpoint, "-n", &options.namespace]
        .map(str::to_owned)
        .to_vec()
}

/// The directory holding the runtime's socket (validated: an absolute path below `/`).
fn socket_directory(socket: &str) -> String {
    std::path::Path::new(socket).parent().map(|d| d.display().to_string()).unwrap_or_else(|| "/".to_owned())
}

/// The agent's DaemonSet: on every node (every taint tolerated), the server's image running
/// [`IMAGE_AGENT_BINARY`] as root without capabilities, the runtime's socket directory mounted read-only at
/// the same path, the node's name from the downward API.
fn daemon_set(options: &InstallOptions) -> DaemonSet {
    let directory = socket_directory(&options.runtime_socket);
    let quantities = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(name, amount)| ((*name).to_owned(), Quantity((*amount).to_owned()))).collect()
    };
    let container = Container {
        name: "image-agent".to_owned(),
        image: Some(options.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(command(options)),
        env: Some(vec![field_env(NODE_NAME_VARIABLE, "spec.nodeName")]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", CPU_REQUEST), ("memory", MEMORY_REQUEST)])),
            limits: Some(quantities(&[("memory", MEMORY_LIMIT)])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: RUNTIME_VOLUME.to_owned(),
            mount_path: directory.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(IMAGE_AGENT_NAME.to_owned()),
        // Root only to open the runtime's socket, which root owns (mode 0660): no capability is needed for it.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            run_as_group: Some(0),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        // Every node's images are pruned, tainted nodes' too.
        tolerations: Some(vec![Toleration { operator: Some("Exists".to_owned()), ..Toleration::default() }]),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: RUNTIME_VOLUME.to_owned(),
            host_path: Some(HostPathVolumeSource { path: directory, type_: Some("Directory".to_owned()) }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    };
    let mut pod_labels = labels();
    pod_labels.extend(selector());
    DaemonSet {
        metadata: meta(IMAGE_AGENT_NAME, Some(&options.namespace)),
        spec: DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(pod),
            },
            ..DaemonSetSpec::default()
        },
        ..DaemonSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::DEFAULT_RUNTIME_SOCKET;

    fn options() -> InstallOptions {
        InstallOptions { namespace: "ops".into(), image_agent: true, ..InstallOptions::default() }
    }

    fn pod(options: &InstallOptions) -> PodSpec {
        daemon_set(options).spec.template.spec.unwrap()
    }

    /// Every (group, resource, verb) a set of rules grants.
    fn grants(rules: &[PolicyRule]) -> Vec<(String, String, String)> {
        let mut grants = Vec::new();
        for rule in rules {
            assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none(), "{rule:?}");
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        grants.push((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
        grants.sort();
        grants
    }

    fn expected(table: &[(&str, &[&str], &[&str])]) -> Vec<(String, String, String)> {
        let mut grants = Vec::new();
        for (group, resources, verbs) in table {
            for resource in *resources {
                for verb in *verbs {
                    grants.push(((*group).to_owned(), (*resource).to_owned(), (*verb).to_owned()));
                }
            }
        }
        grants.sort();
        grants
    }

    #[test]
    fn image_agent_reads_workloads_cluster_wide_and_nothing_more() {
        let read: &[&str] = &["get", "list", "watch"];
        assert_eq!(
            grants(&image_agent_cluster_rules()),
            expected(&[
                ("", &["pods", "replicationcontrollers"], read),
                ("apps", &["deployments", "replicasets", "daemonsets", "statefulsets", "controllerrevisions"], read),
                ("batch", &["jobs", "cronjobs"], read),
                ("", &["nodes"], &["get"]),
            ])
        );
    }

    #[test]
    fn image_agent_reads_image_prunes_writes_their_status_and_keeps_its_lease_in_the_namespace() {
        assert_eq!(
            grants(&image_agent_namespace_rules()),
            expected(&[
                (GROUP, &["imageprunes"], &["get", "list", "watch"]),
                (GROUP, &["imageprunes/status"], &["get", "patch", "update"]),
                ("coordination.k8s.io", &["leases"], &["get", "create", "update", "patch"]),
            ])
        );
    }

    #[test]
    fn image_agent_creates_nothing_but_its_lease_and_deletes_nothing() {
        let all: Vec<PolicyRule> =
            image_agent_cluster_rules().into_iter().chain(image_agent_namespace_rules()).collect();
        for (group, resource, verb) in grants(&all) {
            assert!(!matches!(
                verb.as_str(),
                "delete" | "deletecollection" | "*" | "escalate" | "bind" | "impersonate"
            ));
            if verb == "create" {
                assert_eq!((group.as_str(), resource.as_str()), ("coordination.k8s.io", "leases"));
            }
        }
    }

    #[test]
    fn image_agent_objects_are_bound_to_its_own_account_in_the_namespace() {
        let list = manifests(&options()).unwrap();
        let names: Vec<(&str, String)> = list.iter().map(|m| (m.kind(), m.qualified_name())).collect();
        let agent = "ops/cairn-image-agent".to_owned();
        let cluster = "cairn-image-agent:ops".to_owned();
        assert_eq!(
            names,
            [
                ("ServiceAccount", agent.clone()),
                ("ClusterRole", cluster.clone()),
                ("ClusterRoleBinding", cluster),
                ("Role", agent.clone()),
                ("RoleBinding", agent.clone()),
                ("DaemonSet", agent),
            ]
        );
        for binding in list.iter().filter(|m| m.kind().ends_with("Binding")) {
            let subjects = &binding.object().data["subjects"];
            assert_eq!(
                subjects,
                &serde_json::json!([{"kind": "ServiceAccount", "name": IMAGE_AGENT_NAME, "namespace": "ops"}])
            );
        }
        assert_ne!(image_agent_cluster_role_name("ops"), crate::install::cluster_role_name("image-agent-ops"));
    }

    #[test]
    fn image_agent_runs_cairn_image_agent_from_the_server_image_on_the_runtime_socket() {
        let options = InstallOptions { image: "registry.example/cairn:1".into(), ..options() };
        let container = &pod(&options).containers[0];
        assert_eq!(container.image.as_deref(), Some("registry.example/cairn:1"));
        assert_eq!(
            container.command.as_deref().unwrap(),
            [
                "/usr/local/bin/cairn",
                "image",
                "agent",
                "--runtime-endpoint",
                "unix:///run/containerd/containerd.sock",
                "-n",
                "ops"
            ]
        );
        assert!(container.args.is_none());
        let resources = container.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["memory"], Quantity(MEMORY_REQUEST.to_owned()));
        assert_eq!(resources.limits.as_ref().unwrap()["memory"], Quantity(MEMORY_LIMIT.to_owned()));
    }

    #[test]
    fn image_agent_mounts_the_socket_directory_read_only_from_the_host() {
        let pod = pod(&options());
        let volume = &pod.volumes.as_ref().unwrap()[0];
        let host_path = volume.host_path.as_ref().unwrap();
        assert_eq!((host_path.path.as_str(), host_path.type_.as_deref()), ("/run/containerd", Some("Directory")));
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!((mounts[0].name.as_str(), mounts[0].mount_path.as_str()), (volume.name.as_str(), "/run/containerd"));
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(pod.volumes.as_ref().unwrap().len(), 1, "no other host path");
        assert_eq!(socket_directory(DEFAULT_RUNTIME_SOCKET), "/run/containerd");
    }

    #[test]
    fn image_agent_follows_another_runtime_socket() {
        let options = InstallOptions { runtime_socket: "/var/run/crio/crio.sock".into(), ..options() };
        let pod = pod(&options);
        assert_eq!(pod.volumes.as_ref().unwrap()[0].host_path.as_ref().unwrap().path, "/var/run/crio");
        assert_eq!(pod.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path, "/var/run/crio");
        assert!(pod.containers[0].command.as_ref().unwrap().contains(&"unix:///var/run/crio/crio.sock".to_owned()));
    }

    #[test]
    fn image_agent_runs_as_root_without_capabilities_or_privilege() {
        let pod = pod(&options());
        let pod_security = pod.security_context.as_ref().unwrap();
        assert_eq!((pod_security.run_as_user, pod_security.run_as_non_root), (Some(0), Some(false)));
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref().unwrap(), ["ALL"]);
        assert!(security.capabilities.as_ref().unwrap().add.is_none());
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_ne!(security.privileged, Some(true));
        assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
    }

    #[test]
    fn image_agent_tolerates_every_taint() {
        let tolerations = pod(&options()).tolerations.unwrap();
        let [toleration] = tolerations.as_slice() else { panic!("{tolerations:?}") };
        assert_eq!(toleration.operator.as_deref(), Some("Exists"));
        assert!(toleration.key.is_none() && toleration.effect.is_none() && toleration.value.is_none());
    }

    #[test]
    fn image_agent_learns_its_node_from_the_downward_api() {
        let pod = pod(&options());
        let env = pod.containers[0].env.as_ref().unwrap();
        let [variable] = env.as_slice() else { panic!("{env:?}") };
        assert_eq!(variable.name, "NODE_NAME");
        let field = variable.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(field.field_path, "spec.nodeName");
    }
}
