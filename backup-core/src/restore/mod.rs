//! Restores: read a backup back (Cairn's, checked first, or Velero's), and create its objects in dependency
//! order, remapping namespaces, never deleting anything. `--dry-run` computes the same per-object
//! decisions, checked by the API server's dry run, and changes nothing.
//!
//! `run.rs` runs a restore (waves, retries, the record); `source.rs` reads the backup; `decide.rs` decides
//! each object (pure); `apply.rs` sends what it decides; `transform.rs`, `order.rs` and `mapping.rs` hold
//! the rules they use.

mod apply;
mod choice;
mod decide;
mod hooks;
mod inspect;
mod mapping;
pub mod modifiers;
mod modifiers_load;
mod record;
mod results;
mod run;
mod source;
mod transform;

pub use crate::archive::order::{HIGH_PRIORITY, LOW_PRIORITY, NEVER_RESTORED, WAVES, wave_of};
pub use inspect::{StoredResults, find_restore, list_restores, read_restore_log, read_restore_results};
pub use mapping::{check_mapping, parse_mappings};
pub use modifiers_load::load_modifiers;
pub use record::{
    ExistingResourcePolicy, ItemOutcome, ItemResult, RestoreOutcome, RestorePhase, RestoreRecord, RestoreSpec,
    RestoreStatus,
};
pub use results::ItemResults;
pub use run::{RestoreProgress, RestoreRequest, default_restore_name, run_restore};
pub use source::{BackupSource, IndexEntry, SourceFormat};
pub use transform::{BACKUP_NAME_LABEL, RESTORE_NAME_LABEL, Transform, changed_fields, merge_patch, strip};

use cairn_kube::discovery::DiscoveryError;

use crate::{selection::SelectionError, store::StoreError};

/// Why a restore did not run; nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The resource modifiers cannot be read or used.
    #[error("resource modifiers: {0}")]
    Modifiers(String),
    /// The spec's hooks cannot be used.
    #[error("invalid restore hooks: {0}")]
    Hooks(String),
    /// No backup of that name.
    #[error("no backup named {name:?} in {location}; `cairn backup get` lists the backups there")]
    BackupNotFound {
        /// The name.
        name: String,
        /// The location.
        location: String,
    },
    /// The backup exists but cannot be restored.
    #[error("backup {name:?} cannot be restored: {reason}")]
    NotRestorable {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The archive does not match its manifest or record.
    #[error(
        "backup {name:?} is damaged, nothing was restored: {item}: {problem}; run `cairn backup verify {name}` for every problem"
    )]
    Corrupt {
        /// The backup.
        name: String,
        /// The first bad item.
        item: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An archive entry's path leaves the archive.
    #[error(
        "the archive holds an entry whose path escapes it ({path:?}); refusing the whole backup, nothing was restored"
    )]
    UnsafePath {
        /// The path.
        path: String,
    },
    /// The archive's format version is not one Cairn reads.
    #[error("the archive's format version {version:?} is not supported (Cairn reads 1.x); nothing was restored")]
    FormatVersion {
        /// The version found.
        version: String,
    },
    /// The archive could not be read.
    #[error("reading the archive failed: {0}")]
    Archive(String),
    /// The storage location failed while the archive was read: an outage, not damage.
    #[error(
        "reading the backup from the storage location failed ({0}); the store or the network failed, not the backup: run the restore again"
    )]
    StoreRead(String),
    /// A namespace mapping is malformed.
    #[error(
        "invalid namespace mapping {0:?}: write old:new pairs of namespace names, comma-separated (e.g. shop:shop-copy)"
    )]
    Mapping(String),
    /// A namespace is mapped to two different namespaces.
    #[error(
        "namespace {namespace} is mapped twice (to {first} and to {second}); map each namespace once in --namespace-mappings"
    )]
    MappedTwice {
        /// The namespace.
        namespace: String,
        /// Its first target.
        first: String,
        /// Its second target.
        second: String,
    },
    /// The restore's name is taken or invalid.
    #[error("{0}")]
    Name(String),
    /// The selection could not be used.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The storage location failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
