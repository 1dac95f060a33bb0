//! Whether a Backup object may be deleted now, decided once for the CLI (which refuses early) and the
//! server (which enforces it on a DeleteBackupRequest): not while it runs, not while a restore reads it, and
//! not from a ReadOnly location. Pure.

use cairn_api::{Backup, BackupPhase, BackupStorageLocation, Restore, RestoreObjectPhase};
use kube::ResourceExt;

use super::placement::{LocationUse, PlacementError, check_access};

/// Why a backup cannot be deleted now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeletionRefused {
    /// It is New or InProgress.
    #[error(
        "backup {name:?} is {phase}: it can be deleted once it has finished (`cairn backup get {name}` shows its phase)"
    )]
    Running {
        /// The backup.
        name: String,
        /// Its phase.
        phase: &'static str,
    },
    /// Velero wrote it: Velero keeps it.
    #[error("backup {name:?} was written by Velero, which keeps it: delete it with `velero backup delete {name}`")]
    Velero {
        /// The backup.
        name: String,
    },
    /// A restore made from it is New or InProgress.
    #[error("restore {restore:?} is reading backup {name:?}; delete the backup once the restore has finished")]
    BeingRestored {
        /// The backup.
        name: String,
        /// The restore.
        restore: String,
    },
    /// Its location refuses deletions.
    #[error("cannot delete backup {name:?}: {problem}")]
    Location {
        /// The backup.
        name: String,
        /// Why.
        problem: PlacementError,
    },
}

/// Whether Velero wrote the backup `backup` stands for (sync shows Velero's backups with their format
/// version marked): Cairn never deletes those, by request or at their expiry.
pub fn is_velero_backup(backup: &Backup) -> bool {
    backup
        .status
        .as_ref()
        .and_then(|s| s.format_version.as_deref())
        .is_some_and(|v| v.starts_with(super::VELERO_FORMAT))
}

/// Whether `backup` wrote anything to its location (a New or FailedValidation backup did not: what the
/// location holds under its name, if anything, is another backup's).
pub fn stores_data(backup: &Backup) -> bool {
    !matches!(backup.phase(), BackupPhase::New | BackupPhase::FailedValidation)
}

/// Checks that `backup` may be deleted, given the restores of its namespace and its location (`None`
/// when it stored nothing, see [`stores_data`]).
pub fn check_deletable(
    backup: &Backup,
    restores: &[Restore],
    location: Option<&BackupStorageLocation>,
) -> Result<(), DeletionRefused> {
    let name = backup.name_any();
    if is_velero_backup(backup) {
        return Err(DeletionRefused::Velero { name });
    }
    if backup.phase().is_active() {
        return Err(DeletionRefused::Running { name, phase: backup.phase().as_str() });
    }
    let reading = |r: &&Restore| {
        r.spec.backup_name == name && matches!(r.phase(), RestoreObjectPhase::New | RestoreObjectPhase::InProgress)
    };
    if let Some(restore) = restores.iter().find(reading) {
        return Err(DeletionRefused::BeingRestored { name, restore: restore.name_any() });
    }
    if let Some(location) = location {
        check_access(location, LocationUse::Deletion).map_err(|problem| DeletionRefused::Location { name, problem })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::{
        AccessMode, BackupObjectStatus, BackupSpec, BackupStorageLocationSpec, RestoreObjectStatus, RestoreSpec,
    };

    fn backup(phase: BackupPhase) -> Backup {
        let mut backup = Backup::new("b", BackupSpec::default());
        backup.status = Some(BackupObjectStatus { phase: Some(phase), ..Default::default() });
        backup
    }

    fn restore(phase: RestoreObjectPhase) -> Restore {
        let mut restore = Restore::new("r", RestoreSpec { backup_name: "b".into(), ..Default::default() });
        restore.status = Some(RestoreObjectStatus { phase: Some(phase), ..Default::default() });
        restore
    }

    #[test]
    fn velero_backups_are_never_deleted_by_cairn() {
        let mut velero = backup(BackupPhase::Completed);
        velero.status.as_mut().unwrap().format_version = Some("velero/1.1.0".into());
        let refused = check_deletable(&velero, &[], None).unwrap_err();
        assert!(refused.to_string().contains("velero backup delete b"), "{refused}");
        assert!(check_deletable(&backup(BackupPhase::Completed), &[], None).is_ok());
    }

    #[test]
    fn running_backups_backups_being_restored_and_read_only_locations_are_refused() {
        let running = check_deletable(&backup(BackupPhase::InProgress), &[], None).unwrap_err();
        assert!(
            running.to_string().contains("\"b\" is InProgress") && running.to_string().contains("once it has finished")
        );
        let completed = backup(BackupPhase::Completed);
        let read = check_deletable(&completed, &[restore(RestoreObjectPhase::InProgress)], None).unwrap_err();
        assert!(read.to_string().contains("restore \"r\" is reading backup \"b\""), "{read}");
        let mut archive = BackupStorageLocation::new("archive", BackupStorageLocationSpec::default());
        archive.spec.access_mode = AccessMode::ReadOnly;
        let refused = check_deletable(&completed, &[], Some(&archive)).unwrap_err().to_string();
        assert!(refused.contains("ReadOnly") && refused.contains("--access-mode ReadWrite"), "{refused}");
        assert!(check_deletable(&completed, &[restore(RestoreObjectPhase::Completed)], None).is_ok());
        assert!(!stores_data(&backup(BackupPhase::FailedValidation)) && stores_data(&completed));
    }
}
