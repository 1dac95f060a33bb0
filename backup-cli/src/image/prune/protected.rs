//! The images retained backups name, which a prune keeps so that a restore finds them: standalone, the
//! backups of the storage location (`--storage`, else the embedded default); with a server, the Backup objects
//! of its namespace (Completed or PartiallyFailed, not expired), each backup's results read through a
//! DownloadRequest.

use std::collections::BTreeMap;

use backup_core::backup::{self, BackupResults};
use cairn_api::{Backup, BackupPhase, DownloadTargetKind};

use crate::{
    client::ServerApi,
    connect::{Connection, Mode},
    fetch::{self, gunzip_json},
};

/// Image references retained backups name, each with the backup and its expiry.
pub(super) async fn backup_images(connection: &Connection) -> anyhow::Result<BTreeMap<String, String>> {
    let now = jiff::Timestamp::now();
    let (named, unrecorded) = match connection.mode().await? {
        Mode::Server(server) => server_backup_images(&server, now).await?,
        _ => {
            let retained = backup::retained_images(&connection.existing_store()?, now).await?;
            (retained.named, retained.unrecorded)
        }
    };
    if !unrecorded.is_empty() {
        eprintln!(
            "note: backup(s) {} were made before Cairn recorded images: the images they name are not known",
            unrecorded.join(", ")
        );
    }
    Ok(named)
}

async fn server_backup_images(
    server: &ServerApi,
    now: jiff::Timestamp,
) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let (mut named, mut unrecorded) = (BTreeMap::new(), Vec::new());
    for backup in server.list::<Backup>().await? {
        let expiration = backup.status.as_ref().and_then(|s| s.expiration.as_ref()).map(|t| t.0);
        let retained = matches!(backup.phase(), BackupPhase::Completed | BackupPhase::PartiallyFailed)
            && expiration.is_none_or(|e| e > now);
        if !retained {
            continue;
        }
        let name = backup.metadata.name.clone().unwrap_or_default();
        let results: BackupResults =
            gunzip_json(&fetch::download(server, DownloadTargetKind::BackupResults, &name).await?)?;
        if backup::images_unknown(&results) {
            unrecorded.push(name.clone());
        }
        let until = expiration.map_or_else(|| "no expiry".to_owned(), |e| format!("kept until {e}"));
        for image in results.images {
            named.entry(image).or_insert_with(|| format!("backup {name} ({until})"));
        }
    }
    Ok((named, unrecorded))
}
