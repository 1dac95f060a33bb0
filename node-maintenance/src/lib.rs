//! Cairn's node maintenance, on the shared Kubernetes plumbing (`cairn-kube`) and nothing of backups: what
//! each node is and holds ([`inventory`]), cordoning ([`cordon`]), draining as a plan computed before anything
//! moves and then carried out ([`drain`]), removal and the machine's cleanup script ([`remove`]), and the
//! command that joins a new node ([`join`]).

pub mod cordon;
pub mod drain;
pub mod inventory;
pub mod join;
pub mod remove;

/// A pod named for people and for requests: `namespace/name`, with its uid (a pod recreated under the same
/// name, as a StatefulSet's are, is another pod).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct PodRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The uid.
    #[serde(skip)]
    pub uid: String,
}

impl PodRef {
    /// The reference of `pod`.
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod) -> PodRef {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a node operation failed. Each message names the object, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A request to the API server failed.
    #[error("{what} failed: {problem}")]
    Kube {
        /// What was being done.
        what: String,
        /// The API server's reason.
        problem: String,
    },
    /// The node does not exist.
    #[error("node {0:?} does not exist: see `cairn node list` for the cluster's nodes")]
    NotFound(String),
}

impl NodeError {
    /// `error` met while doing `what`; a missing node is [`NodeError::NotFound`] at the call site.
    pub(crate) fn kube(what: impl Into<String>, error: kube::Error) -> NodeError {
        NodeError::Kube { what: what.into(), problem: cairn_kube::errors::describe(&error) }
    }
}
