//! Simulated nodes: KWOK, managing only the nodes that carry its annotation, with its own stages (from its
//! module: node initialize and heartbeat, pod ready, complete and delete). The real scheduler places pods on
//! them, evictions honour PodDisruptionBudgets, and pods become Ready at once. Tests create the nodes they
//! need with [`FakeNode`].

use std::{path::Path, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, api::PostParams};
use serde_json::json;

use crate::{EnvError, binaries::Binaries, process::Component};

/// The annotation that hands a node to KWOK.
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Starts KWOK against the environment's API server.
pub fn start(binaries: &Binaries, kubeconfig: &Path, log: &Path) -> Result<Component, EnvError> {
    let mut args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--manage-all-nodes=false".into(),
        format!("--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake"),
        "--node-lease-duration-seconds=40".into(),
        "--cidr=10.246.0.0/16".into(),
        "--node-ip=10.255.255.254".into(),
    ];
    let stages = std::fs::read_dir(&binaries.kwok_stages)
        .map_err(|error| EnvError::Io { what: format!("listing {}", binaries.kwok_stages.display()), error })?;
    let mut files: Vec<_> = stages.flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        args.push(format!("--config={}", file.display()));
    }
    let mut kwok = Component::start("kwok", &binaries.kwok, &args, log.to_path_buf(), vec![])?;
    // KWOK says when it watches nodes; bad flags or stages end it before.
    kwok.wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(log).is_ok_and(|text| text.contains("Watch nodes"))
    })?;
    Ok(kwok)
}

/// A simulated node to create.
#[derive(Debug, Clone)]
pub struct FakeNode {
    /// Its name.
    pub name: String,
    /// Allocatable CPU (`4`, `500m`).
    pub cpu: String,
    /// Allocatable memory (`8Gi`).
    pub memory: String,
    /// How many pods it takes.
    pub pods: u32,
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// Its taints: key, value, effect.
    pub taints: Vec<(String, String, String)>,
    /// The images it reports holding: names and size in bytes.
    pub images: Vec<(Vec<String>, u64)>,
}

impl FakeNode {
    /// A node of 4 CPUs, 8 GiB and 110 pods, named `name`.
    pub fn new(name: impl Into<String>) -> FakeNode {
        FakeNode {
            name: name.into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels: Vec::new(),
            taints: Vec::new(),
            images: Vec::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> FakeNode {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> FakeNode {
        self.taints.push((key.into(), value.into(), effect.into()));
        self
    }

    /// Reports an image of `size` bytes under `names`.
    pub fn image(mut self, names: &[&str], size: u64) -> FakeNode {
        self.images.push((names.iter().map(|n| (*n).to_owned()).collect(), size));
        self
    }

    /// The Node object KWOK takes over.
    pub fn object(&self) -> Node {
        let mut labels: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        labels.insert("kubernetes.io/hostname".into(), json!(self.name));
        labels.insert("type".into(), json!("kwok"));
        let capacity = json!({"cpu": self.cpu, "memory": self.memory, "pods": self.pods.to_string()});
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels, "annotations": {KWOK_ANNOTATION: "fake"}},
            "spec": {
                "taints": self.taints.iter().map(|(k, v, e)| json!({"key": k, "value": v, "effect": e})).collect::<Vec<_>>(),
            },
            "status": {
                "allocatable": capacity,
                "capacity": capacity,
                "images": self.images.iter().map(|(names, size)| json!({"names": names, "sizeBytes": size})).collect::<Vec<_>>(),
            },
        }))
        .expect("a node object")
    }

    /// Creates the node and waits until KWOK reports it Ready and the node controller has lifted its not-ready
    /// taint.
    pub async fn create(&self, client: &kube::Client) -> Node {
        let nodes: Api<Node> = Api::all(client.clone());
        let created = nodes
            .create(&PostParams::default(), &self.object())
            .await
            .unwrap_or_else(|e| panic!("creating simulated node {}: {e}", self.name));
        // Node status is a subresource: the images and capacity go in with a status write.
        let status = json!({"status": serde_json::to_value(&self.object().status).expect("a status")});
        let _ =
            nodes.patch_status(&self.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(status)).await;
        // Ready, and rid of the not-ready taint the node controller puts on new nodes: the scheduler takes it.
        for _ in 0..300 {
            if let Ok(node) = nodes.get(&self.name).await
                && node
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                && !node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/not-ready"))
            {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "simulated node {} was not Ready and untainted within 30 s: is KWOK running (TestEnv::kwok)?",
            created.metadata.name.unwrap_or_default()
        );
    }
}
