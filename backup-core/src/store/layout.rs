//! The object-key layout of a storage location: every key Cairn reads or writes is built here and nowhere
//! else.
//!
//! ```text
//! backups/<backup>/cairn-backup.json              the record: written last, create-only; the backup exists iff it does
//! backups/<backup>/<backup>-<run>.tar.zst         the archive (.tar.gz with --compression gzip)
//! backups/<backup>/<backup>-<run>-manifest.json.zst  one line per archive entry: path, size, SHA-256
//! backups/<backup>/<backup>-<run>-logs.gz         the backup's log
//! backups/<backup>/<backup>-<run>-results.json.gz warnings, errors and counts
//! backups/<backup>/<backup>-<run>-resource-list.json.gz  {"<apiVersion>/<Kind>": ["ns/name", ...]}
//! ```
//!
//! `<run>` is unique per attempt, so two writers racing for one name never overwrite each other's data: the
//! loser's create-only record write fails and it deletes only its own keys.

use cairn_api::Compression;
use object_store::path::Path;

/// The top-level folder of backups.
const BACKUPS: &str = "backups";
/// The top-level folder of restores.
const RESTORES: &str = "restores";
/// The record's file name inside a backup's folder.
const RECORD: &str = "cairn-backup.json";

/// The keys of one backup attempt's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKeys {
    /// The record.
    pub record: Path,
    /// The archive.
    pub archive: Path,
    /// The archive's manifest.
    pub manifest: Path,
    /// The log.
    pub log: Path,
    /// The results.
    pub results: Path,
    /// The resource list.
    pub resource_list: Path,
    /// The attempt's run id.
    run: String,
}

impl BackupKeys {
    /// Keys at the given paths, for a layout other than Cairn's (Velero's); they carry no run id.
    pub(crate) fn new(
        record: Path,
        archive: Path,
        manifest: Path,
        log: Path,
        results: Path,
        resource_list: Path,
    ) -> Self {
        BackupKeys { record, archive, manifest, log, results, resource_list, run: String::new() }
    }

    /// The run id these keys carry: unique to one attempt.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Every file of this attempt but the record: what a failed or losing attempt removes.
    pub fn attempt_files(&self) -> Vec<Path> {
        vec![
            self.archive.clone(),
            self.manifest.clone(),
            self.results.clone(),
            self.resource_list.clone(),
            self.log.clone(),
        ]
    }
}

/// The keys of one restore's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreKeys {
    /// The record.
    pub record: Path,
    /// The log.
    pub log: Path,
    /// Results: warnings, errors, counts.
    pub results: Path,
    /// Every item with its outcome: `{"<apiVersion>/<Kind>": ["ns/name(created)", ...]}`.
    pub resource_list: Path,
}

/// Builds keys relative to a location's prefix.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout;

impl Layout {
    /// The folder that holds every backup.
    pub fn backups_dir(&self) -> Path {
        Path::from(BACKUPS)
    }

    /// The folder of one backup: everything under it belongs to that backup.
    pub fn backup_dir(&self, backup: &str) -> Path {
        Path::from_iter([BACKUPS, backup])
    }

    /// The record of `backup`.
    pub fn backup_record(&self, backup: &str) -> Path {
        Path::from_iter([BACKUPS, backup, RECORD])
    }

    /// The keys of one attempt `run` of `backup`.
    pub fn backup_keys(&self, backup: &str, run: &str, compression: Compression) -> BackupKeys {
        let file = |suffix: &str| Path::from_iter([BACKUPS, backup, &format!("{backup}-{run}{suffix}")]);
        BackupKeys {
            record: self.backup_record(backup),
            archive: file(&format!(".{}", compression.extension())),
            manifest: file("-manifest.json.zst"),
            log: file("-logs.gz"),
            results: file("-results.json.gz"),
            resource_list: file("-resource-list.json.gz"),
            run: run.to_owned(),
        }
    }

    /// Velero's record of `backup` (`velero-backup.json`), for backups Velero wrote.
    pub fn velero_record(&self, backup: &str) -> Path {
        Path::from_iter([BACKUPS, backup, "velero-backup.json"])
    }

    /// Velero's archive of `backup` (`<backup>.tar.gz`).
    pub fn velero_archive(&self, backup: &str) -> Path {
        Path::from_iter([BACKUPS, backup, &format!("{backup}.tar.gz")])
    }

    /// The files of restore `restore`: record, log, results and per-item list.
    pub fn restore_keys(&self, restore: &str) -> RestoreKeys {
        let file = |name: String| Path::from_iter([RESTORES, restore, &name]);
        RestoreKeys {
            record: file("cairn-restore.json".into()),
            log: file(format!("restore-{restore}-logs.gz")),
            results: file(format!("restore-{restore}-results.json.gz")),
            resource_list: file(format!("restore-{restore}-resource-list.json.gz")),
        }
    }

    /// The folder of one restore: everything under it belongs to that restore.
    pub fn restore_dir(&self, restore: &str) -> Path {
        Path::from_iter([RESTORES, restore])
    }

    /// The folder that holds every restore.
    pub fn restores_dir(&self) -> Path {
        Path::from(RESTORES)
    }

    /// The restore a key under [`Layout::restores_dir`] belongs to, if any.
    pub fn restore_of(&self, key: &Path) -> Option<String> {
        let mut parts = key.parts();
        (parts.next()?.as_ref() == RESTORES).then_some(())?;
        Some(parts.next()?.as_ref().to_owned())
    }

    /// The backup a key under [`Layout::backups_dir`] belongs to, if any.
    pub fn backup_of(&self, key: &Path) -> Option<String> {
        let mut parts = key.parts();
        (parts.next()?.as_ref() == BACKUPS).then_some(())?;
        Some(parts.next()?.as_ref().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_keys_live_in_the_backups_folder_and_carry_the_run() {
        let keys = Layout.backup_keys("nightly", "r1", Compression::Gzip);
        assert_eq!(keys.record.as_ref(), "backups/nightly/cairn-backup.json");
        assert_eq!(keys.archive.as_ref(), "backups/nightly/nightly-r1.tar.gz");
        assert_eq!(keys.manifest.as_ref(), "backups/nightly/nightly-r1-manifest.json.zst");
        assert_eq!(Layout.backup_of(&keys.log).as_deref(), Some("nightly"));
        assert_eq!(Layout.backup_of(&Path::from("restores/x/y")), None);
    }
}
