//! What every record Cairn stores in a bucket (a backup's, a restore's) starts with: the `cairn.dev/v1`
//! apiVersion and the record's name and labels, as an object's metadata would be.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The apiVersion of stored records, the same as the objects' (`cairn.dev/v1`).
pub const API_VERSION: &str = "cairn.dev/v1";

/// A stored record's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The backup's name.
    pub name: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
