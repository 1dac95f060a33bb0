//! The archive: a tar of one JSON file per object in Velero's layout, compressed with zstd (or gzip, Velero's
//! own format), and a manifest that lists every entry with its size and SHA-256 so a backup can be verified
//! without restoring it.
//!
//! ```text
//! metadata/version                                              "1.1.0\n", always first
//! resources/<group-resource>/namespaces/<ns>/<name>.json        a namespaced object
//! resources/<group-resource>/cluster/<name>.json                a cluster-scoped object
//! resources/<group-resource>/<version>-preferredversion/...     the same object again (Velero's copy)
//! ```
//!
//! Only this module spells archive paths.

mod verify;
mod writer;

pub use verify::{VerifyProblem, VerifyReport, verify};
pub use writer::{ArchiveSummary, ArchiveWriter};

use serde::{Deserialize, Serialize};

/// The archive format version written to `metadata/version` (Velero's current one).
pub const FORMAT_VERSION: &str = "1.1.0";
/// The path of the format version entry.
pub const VERSION_PATH: &str = "metadata/version";

/// Archive errors.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing the archive failed.
    #[error("archive I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A manifest line could not be read.
    #[error("the manifest is corrupt at line {line}: {problem}")]
    Manifest {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// One archive entry as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The entry's path in the tar.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, lowercase hex.
    pub sha256: String,
}

/// The path of an object: `resources/<gr>/namespaces/<ns>/<name>.json` or `resources/<gr>/cluster/<name>.json`.
pub fn item_path(group_resource: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("resources/{group_resource}/namespaces/{ns}/{name}.json"),
        None => format!("resources/{group_resource}/cluster/{name}.json"),
    }
}

/// The path of an object's preferred-version copy: `resources/<gr>/<version>-preferredversion/...`.
pub fn preferred_version_path(group_resource: &str, version: &str, namespace: Option<&str>, name: &str) -> String {
    let scoped = match namespace {
        Some(ns) => format!("namespaces/{ns}/{name}.json"),
        None => format!("cluster/{name}.json"),
    };
    format!("resources/{group_resource}/{version}-preferredversion/{scoped}")
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    text
}

/// Whether a tar entry path is safe to use: relative, without `..`, without empty or `.` components.
pub fn path_is_safe(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_follow_velero_layout() {
        assert_eq!(item_path("pods", Some("web"), "a"), "resources/pods/namespaces/web/a.json");
        assert_eq!(
            item_path("clusterroles.rbac.authorization.k8s.io", None, "admin"),
            "resources/clusterroles.rbac.authorization.k8s.io/cluster/admin.json"
        );
        assert_eq!(
            preferred_version_path("deployments.apps", "v1", Some("web"), "d"),
            "resources/deployments.apps/v1-preferredversion/namespaces/web/d.json"
        );
    }

    #[test]
    fn unsafe_paths_are_recognised() {
        assert!(path_is_safe("resources/pods/cluster/a.json"));
        for bad in ["../etc/passwd", "/abs", "resources/../../x", "a//b", "./a", ""] {
            assert!(!path_is_safe(bad), "{bad}");
        }
    }
}
