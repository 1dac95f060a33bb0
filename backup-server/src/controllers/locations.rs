//! Storage locations, every second: check availability when due (Available/Unavailable with a message) and
//! sync the bucket when due, each at the location's own period or the server's default; a sync's listing of
//! the bucket doubles as the availability check.

use std::{collections::HashMap, time::Duration};

use cairn_api::{Backup, BackupStorageLocation, LocationPhase};
use cairn_kube::duration::parse_duration;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::Store,
};
use serde_json::json;
use tokio::time::Instant;

use super::{KubeContext, ReconcileError, is_ready, sync::sync_location};
use crate::{context::Context, locations::open_object};

/// When each location was last checked and synced.
#[derive(Default)]
struct Due {
    validated: HashMap<String, Instant>,
    synced: HashMap<String, Instant>,
}

/// A location's period: its own (a Go duration) or the server's.
fn period(own: Option<&str>, default: Duration) -> Duration {
    own.and_then(|text| parse_duration(text).ok()).unwrap_or(default)
}

fn is_due(last: Option<&Instant>, every: Duration) -> bool {
    last.is_none_or(|last| last.elapsed() >= every)
}

/// Runs until `shutdown` resolves; `backups` is the Backup controller's store, which sync compares the
/// bucket with.
pub(crate) async fn run(
    context: std::sync::Arc<Context>,
    backups: Store<Backup>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut due = Due::default();
    tokio::pin!(shutdown);
    loop {
        if let Err(error) = super::guarded("the storage location loop".into(), tick(&context, &backups, &mut due)).await
        {
            tracing::warn!("storage locations: {error}");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn tick(context: &Context, backups: &Store<Backup>, due: &mut Due) -> Result<(), ReconcileError> {
    let api = context.api::<BackupStorageLocation>();
    let locations = api.list(&Default::default()).await.doing(|| "listing backup storage locations".into())?.items;
    due.validated.retain(|name, _| locations.iter().any(|l| l.name_any() == *name));
    due.synced.retain(|name, _| locations.iter().any(|l| l.name_any() == *name));
    for location in locations {
        let name = location.name_any();
        let validation_every =
            period(location.spec.validation_frequency.as_deref(), context.settings.validation_frequency);
        let sync_every = period(location.spec.backup_sync_period.as_deref(), context.settings.sync_period);
        // A period of 0 switches the check off (as Velero's does). Sync waits until the watch has listed the
        // cluster's backups once: before, every stored backup would look new.
        let validate = !validation_every.is_zero() && is_due(due.validated.get(&name), validation_every);
        let sync = !sync_every.is_zero() && is_due(due.synced.get(&name), sync_every) && is_ready(backups);
        if !validate && !sync {
            continue;
        }
        let was_available = location.is_available();
        let opened = open_object(context, location.clone()).await;
        // A sync's listing of the bucket is also the reachability check: one listing a period, not two.
        let (reachable, synced) = match &opened {
            Err(problem) => (Err(problem.to_string()), None),
            Ok(open) if sync => {
                due.synced.insert(name.clone(), Instant::now());
                match sync_location(context, open, backups).await? {
                    Ok(synced) => (Ok(()), Some(synced)),
                    Err(message) => (Err(message), None),
                }
            }
            Ok(open) => (open.store.check_reachable().await.map_err(|e| e.to_string()), None),
        };
        if validate || reachable.is_ok() != was_available {
            due.validated.insert(name.clone(), Instant::now());
            let status = match &reachable {
                Ok(()) => {
                    json!({ "phase": LocationPhase::Available, "message": null, "lastValidationTime": Time(Timestamp::now()) })
                }
                Err(message) => {
                    json!({ "phase": LocationPhase::Unavailable, "message": message, "lastValidationTime": Time(Timestamp::now()) })
                }
            };
            if reachable.is_ok() != was_available {
                tracing::info!(location = %name, "location is {}", if reachable.is_ok() { "Available" } else { "Unavailable" });
            }
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
                .await
                .doing(|| format!("updating the status of location {name}"))?;
        }
        match (sync, synced, reachable) {
            (true, Some(synced), _) => {
                if synced.created + synced.removed > 0 {
                    tracing::info!(location = %name, created = synced.created, removed = synced.removed, "bucket synced");
                }
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": { "lastSyncedTime": Time(Timestamp::now()) } })),
                )
                .await
                .doing(|| format!("updating the status of location {name}"))?;
            }
            (true, None, Err(error)) if opened.is_ok() => tracing::warn!(location = %name, "sync failed: {error}"),
            _ => {}
        }
    }
    Ok(())
}
