//! Bucket sync, decided: which backups found in a location's bucket become Backup objects, and which
//! finished Backup objects of the location are removed because their data is gone. Pure: the server reads
//! the bucket and the cluster, this decides.

use std::collections::BTreeSet;

use cairn_api::BackupPhase;

/// A Backup object as sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBackup {
    /// Its name.
    pub name: String,
    /// The location it names.
    pub location: String,
    /// Its phase.
    pub phase: BackupPhase,
}

/// What sync does for one location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Backups in the bucket with no object of their name: create their objects.
    pub create: Vec<String>,
    /// Completed or PartiallyFailed objects of this location whose data is gone: remove them.
    pub remove: Vec<String>,
}

/// Compares the backups stored in `location` with the cluster's Backup objects. Objects of other locations
/// are never removed; objects still running, failed or being deleted are left alone.
pub fn plan_sync(location: &str, stored: &BTreeSet<String>, cluster: &[ClusterBackup]) -> SyncPlan {
    let known: BTreeSet<&str> = cluster.iter().map(|b| b.name.as_str()).collect();
    SyncPlan {
        create: stored.iter().filter(|name| !known.contains(name.as_str())).cloned().collect(),
        remove: cluster
            .iter()
            .filter(|b| b.location == location && b.phase.is_restorable() && !stored.contains(&b.name))
            .map(|b| b.name.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, location: &str, phase: BackupPhase) -> ClusterBackup {
        ClusterBackup { name: name.into(), location: location.into(), phase }
    }

    #[test]
    fn stored_backups_without_objects_are_created_and_finished_objects_without_data_removed() {
        let stored: BTreeSet<String> = ["a", "b", "from-elsewhere"].map(String::from).into();
        let cluster = [
            backup("a", "main", BackupPhase::Completed),
            backup("b", "main", BackupPhase::PartiallyFailed),
            backup("gone", "main", BackupPhase::Completed),
            backup("gone-partial", "main", BackupPhase::PartiallyFailed),
        ];
        let plan = plan_sync("main", &stored, &cluster);
        assert_eq!(plan.create, ["from-elsewhere"]);
        assert_eq!(plan.remove, ["gone", "gone-partial"]);
    }

    #[test]
    fn running_failed_and_other_locations_objects_are_never_removed() {
        let cluster = [
            backup("running", "main", BackupPhase::InProgress),
            backup("new", "main", BackupPhase::New),
            backup("failed", "main", BackupPhase::Failed),
            backup("deleting", "main", BackupPhase::Deleting),
            backup("elsewhere", "other", BackupPhase::Completed),
        ];
        assert_eq!(plan_sync("main", &BTreeSet::new(), &cluster), SyncPlan::default());
    }
}
