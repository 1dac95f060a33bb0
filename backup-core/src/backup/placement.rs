//! Which BackupStorageLocation a backup goes to (the one named, else the single location marked default,
//! else the only location), and whether it accepts what is asked of it: a ReadOnly location takes no new
//! backups and no deletions. Pure: the CLI refuses early with these, the server enforces them.

use cairn_api::BackupStorageLocation;
use kube::ResourceExt;

/// What a location is about to be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationUse {
    /// Take a new backup.
    NewBackup,
    /// Delete a stored backup.
    Deletion,
}

/// Why no location, or not this one, serves a backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The named location does not exist.
    #[error(
        "no BackupStorageLocation named {name:?} in namespace {namespace:?}; `cairn backup-location get` lists them"
    )]
    NotFound {
        /// The name.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// No BackupStorageLocation exists, so a backup has nowhere to go.
    #[error(
        "no backup storage location exists in namespace {namespace:?}, so a backup has nowhere to go: create one with \
         `cairn backup-location create NAME --provider ... --bucket ... --default`"
    )]
    NoLocation {
        /// The namespace.
        namespace: String,
    },
    /// Several locations exist and none is the default, so a backup that names none has nowhere to go.
    #[error(
        "none of the backup storage locations in namespace {namespace:?} ({}) is the default: pass \
         --storage-location NAME, or make one the default with `cairn backup-location set NAME --default`",
        .locations.join(", ")
    )]
    NoDefaultLocation {
        /// The namespace.
        namespace: String,
        /// The locations there.
        locations: Vec<String>,
    },
    /// Several locations are marked default, so which one a backup goes to is ambiguous.
    #[error(
        "backup storage locations {} in namespace {namespace:?} are all marked default: keep one with \
         `cairn backup-location set NAME --default`, or pass --storage-location NAME",
        .locations.join(", ")
    )]
    SeveralDefaultLocations {
        /// The namespace.
        namespace: String,
        /// The locations marked default.
        locations: Vec<String>,
    },
    /// The location is ReadOnly, so it takes no backups and no deletions.
    #[error(
        "backup storage location {name:?} is ReadOnly, so {refused}: run `cairn backup-location set {name} \
         --access-mode ReadWrite` first{alternative}"
    )]
    ReadOnly {
        /// The location.
        name: String,
        /// What it refuses, as a clause: `backups cannot be written to it`, ....
        refused: String,
        /// Another way out, as a clause starting with `, or`; may be empty.
        alternative: String,
    },
}

/// The location a backup naming `named` (empty: none) goes to among `locations`, the BackupStorageLocations
/// of `namespace`: the one named, else the single one marked default, else the only one.
pub fn choose_location<'a>(
    locations: &'a [BackupStorageLocation],
    named: &str,
    namespace: &str,
) -> Result<&'a BackupStorageLocation, PlacementError> {
    if !named.is_empty() {
        return locations
            .iter()
            .find(|l| l.name_any() == named)
            .ok_or_else(|| PlacementError::NotFound { name: named.to_owned(), namespace: namespace.to_owned() });
    }
    let defaults: Vec<&BackupStorageLocation> = locations.iter().filter(|l| l.spec.default).collect();
    let names = |list: &[&BackupStorageLocation]| list.iter().map(|l| l.name_any()).collect::<Vec<_>>();
    match (defaults.as_slice(), locations) {
        ([one], _) => Ok(one),
        ([], [only]) => Ok(only),
        ([], []) => Err(PlacementError::NoLocation { namespace: namespace.to_owned() }),
        ([], _) => Err(PlacementError::NoDefaultLocation {
            namespace: namespace.to_owned(),
            locations: names(&locations.iter().collect::<Vec<_>>()),
        }),
        (several, _) => {
            Err(PlacementError::SeveralDefaultLocations { namespace: namespace.to_owned(), locations: names(several) })
        }
    }
}

/// Refuses `location` when it is ReadOnly and `purpose` writes to it.
pub fn check_access(location: &BackupStorageLocation, purpose: LocationUse) -> Result<(), PlacementError> {
    if !location.is_read_only() {
        return Ok(());
    }
    let (refused, alternative) = match purpose {
        LocationUse::NewBackup => {
            ("backups cannot be written to it", ", or pass --storage-location NAME with another location")
        }
        LocationUse::Deletion => ("nothing can be deleted from it", ""),
    };
    Err(PlacementError::ReadOnly {
        name: location.name_any(),
        refused: refused.to_owned(),
        alternative: alternative.to_owned(),
    })
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
