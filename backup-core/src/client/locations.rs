//! Which BackupStorageLocation a backup goes to, decided as the server decides it (the one named, else the
//! single location marked default, else the only location), and whether it accepts what is asked of it:
//! a ReadOnly location takes no new backups and no deletions.

use kube::ResourceExt;

use super::{ClientError, ServerApi};
use cairn_api::{Backup, BackupPhase, BackupStorageLocation};

/// What a location is about to be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationUse {
    /// Take a new backup.
    NewBackup,
    /// Delete a stored backup.
    Deletion,
}

/// The location a backup naming `named` (empty: none) goes to among `locations`, the BackupStorageLocations
/// of `namespace`: the one named, else the single one marked default, else the only one. No I/O.
pub fn choose_location<'a>(
    locations: &'a [BackupStorageLocation],
    named: &str,
    namespace: &str,
) -> Result<&'a BackupStorageLocation, ClientError> {
    if !named.is_empty() {
        return locations.iter().find(|l| l.name_any() == named).ok_or_else(|| ClientError::NotFound {
            kind: "BackupStorageLocation".into(),
            name: named.to_owned(),
            namespace: namespace.to_owned(),
        });
    }
    let defaults: Vec<&BackupStorageLocation> = locations.iter().filter(|l| l.spec.default).collect();
    let names = |list: &[&BackupStorageLocation]| list.iter().map(|l| l.name_any()).collect::<Vec<_>>();
    match (defaults.as_slice(), locations) {
        ([one], _) => Ok(one),
        ([], [only]) => Ok(only),
        ([], []) => Err(ClientError::NoLocation { namespace: namespace.to_owned() }),
        ([], _) => Err(ClientError::NoDefaultLocation {
            namespace: namespace.to_owned(),
            locations: names(&locations.iter().collect::<Vec<_>>()),
        }),
        (several, _) => {
            Err(ClientError::SeveralDefaultLocations { namespace: namespace.to_owned(), locations: names(several) })
        }
    }
}

/// Refuses `location` when it is ReadOnly and `purpose` writes to it.
pub fn check_access(location: &BackupStorageLocation, purpose: LocationUse) -> Result<(), ClientError> {
    if !location.is_read_only() {
        return Ok(());
    }
    let (refused, alternative) = match purpose {
        LocationUse::NewBackup => {
            ("backups cannot be written to it", ", or pass --storage-location NAME with another location")
        }
        LocationUse::Deletion => ("nothing can be deleted from it", ""),
    };
    Err(ClientError::ReadOnlyLocation {
        name: location.name_any(),
        refused: refused.to_owned(),
        alternative: alternative.to_owned(),
    })
}

impl ServerApi {
    /// The location a new backup naming `named` (empty: none) goes to, checked to take backups: missing,
    /// ambiguous and ReadOnly locations are refused with the fix, as the server would refuse them later.
    pub async fn location_for_backup(&self, named: &str) -> Result<BackupStorageLocation, ClientError> {
        let location = if named.is_empty() {
            let all = self.list::<BackupStorageLocation>().await?;
            choose_location(&all, "", self.namespace())?.clone()
        } else {
            self.get::<BackupStorageLocation>(named).await?
        };
        check_access(&location, LocationUse::NewBackup)?;
        Ok(location)
    }

    /// The location holding `backup`'s data, checked to allow its deletion; `None` when the backup stored
    /// nothing (New, FailedValidation), so its deletion touches no location. Refused as the server would
    /// refuse it: a missing or ReadOnly location.
    pub async fn location_for_deletion(&self, backup: &Backup) -> Result<Option<BackupStorageLocation>, ClientError> {
        if matches!(backup.phase(), BackupPhase::New | BackupPhase::FailedValidation) {
            return Ok(None);
        }
        let named = backup.spec.storage_location.as_str();
        let location = if named.is_empty() {
            let all = self.list::<BackupStorageLocation>().await?;
            choose_location(&all, "", self.namespace())?.clone()
        } else {
            self.get::<BackupStorageLocation>(named).await?
        };
        check_access(&location, LocationUse::Deletion)?;
        Ok(Some(location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::{AccessMode, BackupStorageLocationSpec};

    fn location(name: &str, default: bool) -> BackupStorageLocation {
        BackupStorageLocation::new(name, BackupStorageLocationSpec { default, ..Default::default() })
    }

    fn chosen(locations: &[BackupStorageLocation], named: &str) -> Result<String, String> {
        choose_location(locations, named, "cairn").map(|l| l.name_any()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_named_location_is_chosen_whatever_the_default() {
        let all = [location("a", true), location("b", false)];
        assert_eq!(chosen(&all, "b").unwrap(), "b");
        let missing = chosen(&all, "c").unwrap_err();
        assert!(missing.contains("no BackupStorageLocation named \"c\""), "{missing}");
    }

    #[test]
    fn without_a_name_the_single_default_or_the_only_location_is_chosen() {
        assert_eq!(chosen(&[location("a", false), location("b", true)], "").unwrap(), "b");
        assert_eq!(chosen(&[location("only", false)], "").unwrap(), "only");
    }

    #[test]
    fn no_location_no_default_or_several_defaults_are_refused_with_the_fix() {
        let none = chosen(&[], "").unwrap_err();
        assert!(none.contains("no backup storage location exists") && none.contains("--default"), "{none}");
        let undecided = chosen(&[location("a", false), location("b", false)], "").unwrap_err();
        assert!(undecided.contains("(a, b) is the default") && undecided.contains("set NAME --default"), "{undecided}");
        let ambiguous = chosen(&[location("a", true), location("b", true)], "").unwrap_err();
        assert!(ambiguous.contains("a, b") && ambiguous.contains("all marked default"), "{ambiguous}");
    }

    #[test]
    fn a_read_only_location_refuses_backups_and_deletions_naming_the_fix() {
        let mut archive = location("archive", false);
        archive.spec.access_mode = AccessMode::ReadOnly;
        for purpose in [LocationUse::NewBackup, LocationUse::Deletion] {
            let refused = check_access(&archive, purpose).unwrap_err().to_string();
            assert!(refused.contains("\"archive\" is ReadOnly"), "{refused}");
            assert!(refused.contains("cairn backup-location set archive --access-mode ReadWrite"), "{refused}");
        }
        assert!(check_access(&location("main", true), LocationUse::Deletion).is_ok());
    }
}
