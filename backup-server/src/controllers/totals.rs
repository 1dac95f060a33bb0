//! Every 5 s, the number of Backup and Restore objects, for the `cairn_backup_total` and `cairn_restore_total`
//! gauges.

use std::{sync::Arc, time::Duration};

use cairn_api::{Backup, Restore};
use kube::api::ListParams;

use crate::context::Context;

/// Runs until `shutdown` resolves.
pub(crate) async fn run(context: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let backups = context.api::<Backup>().list_metadata(&ListParams::default()).await;
        let restores = context.api::<Restore>().list_metadata(&ListParams::default()).await;
        if let (Ok(backups), Ok(restores)) = (backups, restores) {
            context.metrics.set_totals(backups.items.len() as i64, restores.items.len() as i64);
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
