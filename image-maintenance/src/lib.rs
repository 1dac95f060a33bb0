//! Cairn's image maintenance, on the shared Kubernetes plumbing (`cairn-kube`) and nothing of backups or
//! nodes: image references ([`mod@reference`]), the workloads' pod templates ([`workloads`]), the cluster's
//! image inventory from the nodes' reports ([`inventory`]), lint of the images workloads name ([`lint`]), and
//! image updates with a recorded cause, their history and rollback ([`rollout`]), and prunes that keep what is
//! still needed ([`prune`]) of a container runtime reached over CRI (`cri` and `node_prune`, with the feature
//! `cri`).

#[cfg(feature = "cri")]
pub mod cri;
pub mod inventory;
pub mod lint;
#[cfg(feature = "cri")]
pub mod node_prune;
pub mod prune;
pub mod reference;
pub mod rollout;
pub mod workloads;

/// Why an image operation failed. Each message names the object, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A request to the API server failed.
    #[error("{what} failed: {problem}")]
    Kube {
        /// What was being done.
        what: String,
        /// The API server's reason.
        problem: String,
    },
    /// The input names something that is not there or cannot be.
    #[error("{0}")]
    Invalid(String),
}

impl ImageError {
    /// `error` met while doing `what`.
    pub(crate) fn kube(what: impl Into<String>, error: kube::Error) -> ImageError {
        ImageError::Kube { what: what.into(), problem: cairn_kube::errors::describe(&error) }
    }
}
