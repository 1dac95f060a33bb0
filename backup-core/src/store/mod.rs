//! Storage locations: where backups live (an S3 bucket and prefix, or a local directory) and how to reach them.

mod backups;
mod layout;
mod location;
mod location_spec;
mod part_writer;

pub(crate) use backups::write_gzip_json;
pub use layout::{BackupKeys, Layout, RestoreKeys};
pub(crate) use location::check_endpoint;
pub use location::{Location, S3Credentials, credentials_from_secret, default_local_root, redact_credentials};
pub use part_writer::{PART_SIZE, PartWriter};

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
    #[error("cannot open storage location {location}: {cause}")]
    Open {
        /// The location, as a URL.
        location: String,
        /// The client's reason, its causes each said once.
        cause: String,
    },
    /// The location refused or failed a request.
    #[error("storage location {location}: {problem} ({cause}); {fix}")]
    Access {
        /// The location, as a URL.
        location: String,
        /// What went wrong, in words.
        problem: &'static str,
        /// What to do about it.
        fix: &'static str,
        /// The client's error, its causes each said once.
        cause: String,
    },
    /// A key that must exist does not.
    #[error("{key} does not exist in {location}")]
    NotFound {
        /// The key.
        key: String,
        /// The location.
        location: String,
    },
    /// A create-only write found the key taken: nothing was overwritten.
    #[error("{key} already exists in {location}; nothing was overwritten")]
    AlreadyExists {
        /// The key.
        key: String,
        /// The location.
        location: String,
    },
    /// A stored file could not be parsed.
    #[error("{key} is corrupt: {problem}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// An AWS credentials file could not be used.
    #[error("AWS credentials file {}: {problem}; fix the file or the location's credentials= and profile=", path.display())]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A BackupStorageLocation's spec cannot be used.
    #[error("backup storage location {location:?}: {problem}")]
    InvalidSpec {
        /// The location's name.
        location: String,
        /// What is wrong, and how to fix it.
        problem: String,
    },
    /// The credentials in a Secret cannot be used.
    #[error("credentials in secret {secret} key {key}: {problem}; store an AWS credentials file there")]
    SecretCredentials {
        /// The Secret's name.
        secret: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A local location read from does not exist.
    #[error("the storage directory {} does not exist; check the path in --storage or CAIRN_STORAGE (nothing was created)", path.display())]
    NoSuchDirectory {
        /// The directory.
        path: std::path::PathBuf,
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
    signer: Option<Signer>,
}

/// Signs download URLs for keys of an S3 location.
#[derive(Debug, Clone)]
struct Signer {
    s3: Arc<object_store::aws::AmazonS3>,
    prefix: String,
}

impl Store {
    /// The location this store was opened from.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The object store, with keys relative to the location's prefix. Crate-private: every key Cairn reads
    /// or writes comes from [`Layout`], through the methods of `Store`.
    pub(crate) fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }
}
