//! The cluster's images: every image each node reports (`status.images`: the kubelet lists up to 50 per node
//! by default, largest first), its size, the nodes holding it and the pods using it, and per node the images
//! no pod there uses and the bytes they take. A [`Builder`] computes it from Node and Pod objects without
//! I/O, a node at a time; [`read`] reads them a page at a time.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ContainerImage, Node, Pod};
use kube::{Api, Client, api::ListParams};
use serde::Serialize;

use crate::{ImageError, reference::ImageRef, workloads::containers};

/// One image, across the nodes that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The image's name: its digest name (`repository@sha256:...`) when a node reports one, else its first.
    pub image: String,
    /// Every name the nodes report for it (tags and digests).
    pub names: Vec<String>,
    /// Its size, as the nodes report it.
    pub size_bytes: u64,
    /// The nodes holding it.
    pub nodes: Vec<String>,
    /// The pods using it, `namespace/name`.
    pub pods: Vec<String>,
}

/// One node's images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeImages {
    /// The node.
    pub node: String,
    /// Images it holds.
    pub images: usize,
    /// Bytes they take.
    pub bytes: u64,
    /// Images no pod on the node uses (by [`ImageSummary::image`]).
    pub unused: Vec<String>,
    /// Bytes the unused images take: what a prune could free at most.
    pub unused_bytes: u64,
    /// Where the node's images come from: `status` (the kubelet's report, at most 50 images by default) or
    /// `runtime` (its image agent's full list).
    pub source: &'static str,
    /// From the runtime: the bytes a prune with no rules would free there now (its dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prunable_bytes: Option<u64>,
}

/// A node's images as its runtime lists them (through the node's image agent), in place of its status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeList {
    /// Each image's names and size.
    pub images: Vec<ContainerImage>,
    /// The bytes a prune with no rules would free.
    pub prunable_bytes: u64,
}

/// The whole inventory, with totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// Every image, by name.
    pub images: Vec<ImageSummary>,
    /// Every node that reports images.
    pub nodes: Vec<NodeImages>,
    /// Distinct images.
    pub total_images: usize,
    /// Bytes over every node (an image on three nodes counts three times).
    pub total_bytes: u64,
    /// Bytes of unused images over every node.
    pub unused_bytes: u64,
}

/// The names a pod's containers run, as the runtime spells them: each image's runtime names and the image
/// IDs its container statuses report.
fn pod_image_names(pod: &Pod) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(spec) = &pod.spec {
        for (_, image, _) in containers(spec) {
            if let Ok(parsed) = ImageRef::parse(image) {
                names.extend(parsed.runtime_names());
            }
        }
    }
    let status = pod.status.as_ref();
    let statuses = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()));
    for container in statuses {
        names.insert(container.image_id.clone());
        if let Ok(parsed) = ImageRef::parse(&container.image) {
            names.extend(parsed.runtime_names());
        }
    }
    names.remove("");
    names
}

/// An inventory being built one node at a time, so that a large cluster's nodes need not all be held at
/// once.
pub struct Builder {
    pods_by_node: BTreeMap<String, Vec<(String, BTreeSet<String>)>>,
    images: BTreeMap<String, ImageSummary>,
    nodes: Vec<NodeImages>,
}

impl Builder {
    /// A builder that matches images to `pods` (those bound to a node count for it).
    pub fn new(pods: &[Pod]) -> Builder {
        let mut pods_by_node: BTreeMap<String, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
        for pod in pods {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                let name = format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default()
                );
                pods_by_node.entry(node.to_owned()).or_default().push((name, pod_image_names(pod)));
            }
        }
        Builder { pods_by_node, images: BTreeMap::new(), nodes: Vec::new() }
    }

    /// Adds `node`'s images: its runtime's list when given, else its status.
    pub fn add_node(&mut self, node: Node, runtime: Option<&RuntimeList>) {
        let name = node.metadata.name.unwrap_or_default();
        let reported = match runtime {
            Some(list) => list.images.clone(),
            None => node.status.and_then(|s| s.images).unwrap_or_default(),
        };
        let mut row = NodeImages {
            node: name.clone(),
            images: 0,
            bytes: 0,
            unused: Vec::new(),
            unused_bytes: 0,
            source: if runtime.is_some() { "runtime" } else { "status" },
            prunable_bytes: runtime.map(|r| r.prunable_bytes),
        };
        let pods = self.pods_by_node.get(&name);
        for image in reported {
            let names = image.names.unwrap_or_default();
            let Some(key) = names.iter().find(|n| n.contains('@')).or(names.first()).cloned() else { continue };
            let size = u64::try_from(image.size_bytes.unwrap_or(0)).unwrap_or(0);
            let users: Vec<String> = pods
                .into_iter()
                .flatten()
                .filter(|(_, used)| names.iter().any(|n| used.contains(n)))
                .map(|(pod, _)| pod.clone())
                .collect();
            row.images += 1;
            row.bytes += size;
            if users.is_empty() {
                row.unused.push(key.clone());
                row.unused_bytes += size;
            }
            let entry = self.images.entry(key.clone()).or_insert_with(|| ImageSummary {
                image: key,
                names: Vec::new(),
                size_bytes: size,
                nodes: Vec::new(),
                pods: Vec::new(),
            });
            for n in names {
                if !entry.names.contains(&n) {
                    entry.names.push(n);
                }
            }
            entry.nodes.push(name.clone());
            entry.pods.extend(users);
        }
        if row.images > 0 {
            self.nodes.push(row);
        }
    }

    /// The inventory, with its totals.
    pub fn finish(self) -> Inventory {
        let images: Vec<ImageSummary> = self.images.into_values().collect();
        Inventory {
            total_images: images.len(),
            total_bytes: self.nodes.iter().map(|n| n.bytes).sum(),
            unused_bytes: self.nodes.iter().map(|n| n.unused_bytes).sum(),
            images,
            nodes: self.nodes,
        }
    }
}

impl Inventory {
    /// Only the images some node holds unused, each with just the nodes where it is unused.
    pub fn only_unused(mut self) -> Inventory {
        let nodes = &self.nodes;
        self.images.retain_mut(|image| {
            image.nodes.retain(|node| nodes.iter().any(|n| &n.node == node && n.unused.contains(&image.image)));
            image.pods.clear();
            !image.nodes.is_empty()
        });
        self.total_images = self.images.len();
        self
    }
}

/// Nodes read per request: a page of nodes that report many images each is still a few megabytes.
const NODES_PER_PAGE: u32 = 50;

/// Reads the nodes (all, those `node_selector` selects, or the one named `node`) a page at a time, and every
/// pod bound to a node, and summarizes them; a node in `runtime` counts with its runtime's list.
pub async fn read(
    client: &Client,
    node_selector: Option<&str>,
    node: Option<&str>,
    runtime: &BTreeMap<String, RuntimeList>,
) -> Result<Inventory, ImageError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let pods = pods
        .list(&ListParams::default().fields("spec.nodeName!="))
        .await
        .map_err(|e| ImageError::kube("listing pods", e))?
        .items;
    let mut builder = Builder::new(&pods);
    drop(pods);
    let api: Api<Node> = Api::all(client.clone());
    let mut params = ListParams::default().limit(NODES_PER_PAGE);
    if let Some(selector) = node_selector {
        params = params.labels(selector);
    }
    if let Some(node) = node {
        params = params.fields(&format!("metadata.name={node}"));
    }
    let mut found = false;
    loop {
        let page = api.list(&params).await.map_err(|e| ImageError::kube("listing nodes", e))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for listed in page.items {
            found = true;
            let list = listed.metadata.name.as_ref().and_then(|n| runtime.get(n));
            builder.add_node(listed, list);
        }
        match next {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    if let Some(node) = node
        && !found
    {
        return Err(ImageError::Invalid(format!("node {node:?} does not exist: see `cairn node list`")));
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, images: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"images": images}})).unwrap()
    }

    fn pod(name: &str, node: &str, image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn images_are_matched_to_pods_by_normalized_name_and_unused_bytes_are_counted_per_node() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let nginx = json!({"names": [format!("docker.io/library/nginx@{digest}"), "docker.io/library/nginx:1.25"], "sizeBytes": 100});
        let old = json!({"names": ["docker.io/library/nginx:1.24"], "sizeBytes": 90});
        let nodes = [node("n1", json!([nginx, old])), node("n2", json!([nginx]))];
        let pods = [pod("web-1", "n1", "nginx:1.25")];
        let mut builder = Builder::new(&pods);
        nodes.into_iter().for_each(|n| builder.add_node(n, None));
        let inventory = builder.finish();
        assert_eq!(inventory.total_images, 2);
        assert_eq!(inventory.total_bytes, 290);
        let n1 = &inventory.nodes[0];
        assert_eq!(
            (n1.images, n1.unused.as_slice(), n1.unused_bytes),
            (2, &["docker.io/library/nginx:1.24".to_owned()][..], 90)
        );
        let n2 = &inventory.nodes[1];
        assert_eq!(n2.unused_bytes, 100, "nginx is unused on n2, where no pod runs it");
        let shared = inventory.images.iter().find(|i| i.image.contains('@')).unwrap();
        assert_eq!(shared.nodes, ["n1", "n2"]);
        assert_eq!(shared.pods, ["shop/web-1"]);
        assert_eq!(inventory.unused_bytes, 190);
        let unused = inventory.only_unused();
        let names: Vec<(&str, &[String])> =
            unused.images.iter().map(|i| (i.image.as_str(), i.nodes.as_slice())).collect();
        assert_eq!(names.len(), 2);
        assert!(names.iter().any(|(_, nodes)| nodes == &["n2".to_owned()]), "{names:?}");
    }
}
