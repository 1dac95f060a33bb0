//! The `cairn.dev/v1` API: the resources the server reconciles, as Rust types from which the
//! CustomResourceDefinitions in `deploy/crds/` are generated, the labels Cairn sets, what stored records
//! share with them, and the contract between the CLI and the server (the server's Lease and flags). Field
//! names follow Velero's `velero.io/v1` where the meaning is the same, so a Velero manifest ports by
//! changing its group. NodeMaintenance, ImagePrune and ImagePrunePolicy have no Velero counterpart. No I/O.

mod backup;
mod compression;
mod hooks;
mod images;
mod location;
mod maintenance;
mod record;
mod requests;
mod restore;
mod schedule;
mod selection;
pub mod server;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use backup::{Backup, BackupObjectProgress, BackupObjectStatus, BackupPhase, BackupSpec, DEFAULT_TTL};
pub use compression::{BackupFormat, Compression};
pub use hooks::{
    BackupHook, BackupHooks, BackupResourceHookSpec, ExecHook, ExecRestoreHook, HookErrorMode, HookSelection,
    InitRestoreHook, RestoreHooks, RestoreResourceHook, RestoreResourceHookSpec, annotations as hook_annotations,
    restore_annotations,
};
pub use images::{
    DEFAULT_PRUNE_HISTORY, ImagePrune, ImagePrunePolicy, ImagePrunePolicySpec, ImagePrunePolicyStatus, ImagePruneSpec,
    ImagePruneStatus, ImageVerdict, NODE_LABEL, NodePruneSummary, POLICY_LABEL, PrunePhase, PruneRules, RUN_LABEL,
    agent_lease_name, agent_runs, node_label_value,
};
pub use location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, BackupStorageLocationStatus, LocationPhase,
    ObjectStorage, SecretKeySelector,
};
pub use maintenance::{
    DeadlineAction, DrainSpec, MaintenancePhase, NodeDrainStatus, NodeMaintenance, NodeMaintenanceSpec,
    NodeMaintenanceStatus, PodDrainStatus, UNCORDON_FINALIZER,
};
pub use record::{API_VERSION, RecordMeta};
pub use requests::{
    DeleteBackupRequest, DeleteBackupRequestSpec, DeleteBackupRequestStatus, DownloadRequest, DownloadRequestSpec,
    DownloadRequestStatus, DownloadTarget, DownloadTargetKind, RequestPhase, ServerStatusRequest,
    ServerStatusRequestSpec, ServerStatusRequestStatus,
};
pub use restore::{
    ExistingResourcePolicy, ResourceModifierRef, Restore, RestoreObjectPhase, RestoreObjectProgress,
    RestoreObjectStatus, RestoreSpec,
};
pub use schedule::{Schedule, ScheduleObjectStatus, SchedulePhase, ScheduleSpec};
pub use selection::SelectionSpec;

/// The API group.
pub const GROUP: &str = "cairn.dev";

/// Labels Cairn sets on the objects it creates (Velero's, in Cairn's group).
pub mod labels {
    /// The storage location a backup lives in.
    pub const STORAGE_LOCATION: &str = "cairn.dev/storage-location";
    /// The schedule that created a backup.
    pub const SCHEDULE_NAME: &str = "cairn.dev/schedule-name";
    /// The backup a restore or deletion request concerns.
    pub const BACKUP_NAME: &str = "cairn.dev/backup-name";
    /// The uid of the backup a deletion request concerns.
    pub const BACKUP_UID: &str = "cairn.dev/backup-uid";
    /// The restore a restored object came from.
    pub const RESTORE_NAME: &str = "cairn.dev/restore-name";
    /// Why garbage collection could not delete an expired backup: one of the `GC_*` values.
    pub const GC_FAILURE: &str = "cairn.dev/gc-failure";
    /// [`GC_FAILURE`]: the backup's location does not exist.
    pub const GC_LOCATION_NOT_FOUND: &str = "BSLNotFound";
    /// [`GC_FAILURE`]: the backup's location cannot be opened or reached.
    pub const GC_LOCATION_UNREACHABLE: &str = "BSLCannotGet";
    /// [`GC_FAILURE`]: the backup's location is ReadOnly.
    pub const GC_LOCATION_READ_ONLY: &str = "BSLReadOnly";
    /// Annotation on Backup objects that sync created from a stored record: they are never run.
    pub const SYNCED_FROM_BUCKET: &str = "cairn.dev/synced-from-bucket";
}

/// A Go duration (`720h0m0s`, `90m`, `1h30m`, `0s`), as the API server checks it. Numbers have at most 7
/// digits, so absurd values are refused at admission; the parser refuses the rest of what Go cannot
/// represent (past 2562047h) with a FailedValidation.
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]{1,7}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,8}$";
/// [`DURATION_PATTERN`], or empty for "the default".
pub(crate) const OPTIONAL_DURATION_PATTERN: &str = r"^(([0-9]{1,7}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,8})?$";

/// Every CustomResourceDefinition of the group, in the order they are applied.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        BackupStorageLocation::crd(),
        Backup::crd(),
        Restore::crd(),
        Schedule::crd(),
        DeleteBackupRequest::crd(),
        ServerStatusRequest::crd(),
        DownloadRequest::crd(),
        NodeMaintenance::crd(),
        ImagePrune::crd(),
        ImagePrunePolicy::crd(),
    ]
}

/// The file name a CRD is kept under in `deploy/crds/`: `<plural>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy/crds/` must hold exactly what the types generate. Run with `CAIRN_REGENERATE_CRDS=1` to rewrite.
    #[test]
    fn deploy_crds_match_the_rust_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
        let regenerate = std::env::var_os("CAIRN_REGENERATE_CRDS").is_some();
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut stale = Vec::new();
        for crd in crds() {
            let path = dir.join(crd_file_name(&crd));
            let expected = serde_yaml_ng::to_string(&crd).unwrap();
            if regenerate {
                std::fs::write(&path, &expected).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale CRDs {stale:?}: run `CAIRN_REGENERATE_CRDS=1 cargo test -p cairn-api deploy_crds` and commit them"
        );
    }

    #[test]
    fn duration_patterns_bound_their_numbers() {
        let pattern = regex_lite::Regex::new(DURATION_PATTERN).unwrap();
        for good in ["720h0m0s", "1h30m", "0s", "2562047h", "1.5h", "9999999h"] {
            assert!(pattern.is_match(good), "{good}");
        }
        for bad in ["99999999h", "", "5d", "1h30"] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
        assert!(regex_lite::Regex::new(OPTIONAL_DURATION_PATTERN).unwrap().is_match(""));
    }

    #[test]
    fn crds_are_in_the_cairn_group_and_have_status() {
        for crd in crds() {
            assert_eq!(crd.spec.group, GROUP);
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1");
            assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "{}", crd.spec.names.kind);
        }
    }
}
