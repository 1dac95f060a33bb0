//! Every 5 s, the number of Backup and Restore objects, for the `cairn_backup_total` and `cairn_restore_total`
//! gauges: counted in the controllers' stores, so the count costs the API server nothing.

use std::{sync::Arc, time::Duration};

use super::{Watched, is_ready};
use crate::context::Context;

/// Runs until `shutdown` resolves.
pub(crate) async fn run(context: Arc<Context>, watched: Watched, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        if is_ready(&watched.backups) && is_ready(&watched.restores) {
            context.metrics.set_totals(watched.backups.len() as i64, watched.restores.len() as i64);
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
