//! The BackupStorageLocation a backup goes to or is deleted from, read from the server's namespace and
//! decided by the rules the server enforces (`backup::placement`, `backup::deletion`).

use backup_core::backup::{
    deletion::stores_data,
    placement::{LocationUse, check_access, choose_location},
};
use cairn_api::{Backup, BackupStorageLocation};

use super::{ClientError, ServerApi};

impl ServerApi {
    /// The location a new backup naming `named` (empty: none) goes to, checked to take backups: missing,
    /// ambiguous and ReadOnly locations are refused with the fix, as the server would refuse them later.
    pub(crate) async fn location_for_backup(&self, named: &str) -> Result<BackupStorageLocation, ClientError> {
        let location = if named.is_empty() {
            let all = self.list::<BackupStorageLocation>().await?;
            choose_location(&all, "", self.namespace())?.clone()
        } else {
            self.get::<BackupStorageLocation>(named).await?
        };
        check_access(&location, LocationUse::NewBackup)?;
        Ok(location)
    }

    /// The location holding `backup`'s data; `None` when the backup stored nothing (New, FailedValidation),
    /// so its deletion touches no location. A missing location is refused, as the server would refuse it.
    pub(crate) async fn location_of(&self, backup: &Backup) -> Result<Option<BackupStorageLocation>, ClientError> {
        if !stores_data(backup) {
            return Ok(None);
        }
        let named = backup.spec.storage_location.as_str();
        let location = if named.is_empty() {
            let all = self.list::<BackupStorageLocation>().await?;
            choose_location(&all, "", self.namespace())?.clone()
        } else {
            self.get::<BackupStorageLocation>(named).await?
        };
        Ok(Some(location))
    }
}
