//! Storage locations: where backups live (an S3 bucket and prefix, or a local directory) and how to reach them.

mod location;

pub use location::{Location, S3Credentials, default_local_root};

use std::sync::Arc;

use object_store::ObjectStore;

/// Everything that can go wrong while configuring or reaching a storage location.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location URL could not be understood.
    #[error("invalid storage location {url:?}: {problem}; {fix}")]
    InvalidLocation {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
        /// How to write it instead.
        fix: &'static str,
    },
    /// The object-store client could not be built from the location.
    #[error("cannot open storage location {location}")]
    Open {
        /// The location, as a URL.
        location: String,
        /// The client's reason.
        #[source]
        source: object_store::Error,
    },
    /// A local location's directory could not be created.
    #[error("cannot create the local storage directory {path}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The file system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// An opened storage location: an object store already scoped to the location's prefix, so every key
/// Cairn writes is relative to it.
#[derive(Debug, Clone)]
pub struct Store {
    location: Location,
    objects: Arc<dyn ObjectStore>,
}

impl Store {
    /// The location this store was opened from.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The object store, with keys relative to the location's prefix.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }
}
