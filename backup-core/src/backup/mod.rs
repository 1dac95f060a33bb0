//! Backups: collect the selected objects at their preferred versions and stream them into an archive in a
//! storage location, then write the record that makes the backup exist.

mod catalog;
mod collect;
pub mod deletion;
mod engine;
pub(crate) mod hooks;
mod images;
mod inspect;
mod lists;
pub mod placement;
mod plan;
mod record;
mod related;
pub mod retention;
mod sink;
mod sync_plan;
mod velero;
mod velero_write;

pub use catalog::{BackupListing, create_record, list_backup_names, list_backups, read_backup};
pub use engine::{BackupError, BackupOutcome, BackupProgress, BackupRequest, run_backup, validate_name};
pub use hooks::{HookOutcome, HookPhase, HookRun};
pub use images::{RetainedImages, images_unknown, retained_images};
pub use inspect::{
    InspectError, Verification, archive_stream, backup_keys, download_archive, find_backup, read_log,
    read_resource_list, read_results, verify_archive, verify_backup,
};
pub use record::{BackupRecord, BackupResults, BackupSpec, BackupStatus, Phase, Progress};
pub use sync_plan::{ClusterBackup, SyncPlan, plan_sync};
pub use velero::VELERO_FORMAT;
