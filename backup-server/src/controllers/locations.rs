//! Storage locations, every second: check availability when due (Available/Unavailable with a message) and
//! sync the bucket when due, each at the location's own period or the server's default; a sync's listing of
//! the bucket doubles as the availability check. The locations come from a watch and a location stays open
//! between checks, so a sync in which nothing changed sends nothing to the API server.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

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
use crate::{
    context::Context,
    locations::{LocationProblem, OpenLocation, open_object},
};

/// When each location was last checked and synced, and each one opened.
#[derive(Default)]
struct Due {
    validated: HashMap<String, Instant>,
    synced: HashMap<String, Instant>,
    /// Each location opened with its Secret's credentials, and the generation of the spec it was opened
    /// from: kept until the spec changes or the location is next checked (when the Secret is read again,
    /// so rotated credentials are taken within a validation period), so a sync reads no Secret.
    opened: HashMap<String, (Option<i64>, OpenLocation)>,
}

impl Due {
    fn forget_all_but(&mut self, names: &BTreeSet<String>) {
        self.validated.retain(|name, _| names.contains(name));
        self.synced.retain(|name, _| names.contains(name));
        self.opened.retain(|name, _| names.contains(name));
    }
}

/// A location's period: its own (a Go duration) or the server's.
fn period(own: Option<&str>, default: Duration) -> Duration {
    own.and_then(|text| parse_duration(text).ok()).unwrap_or(default)
}

fn is_due(last: Option<&Instant>, every: Duration) -> bool {
    last.is_none_or(|last| last.elapsed() >= every)
}

/// Runs until `shutdown` resolves. `locations` is a watch of the BackupStorageLocations and `backups` the
/// Backup controller's store, which sync compares the bucket with: a period in which nothing changed costs
/// one listing of each bucket due and no request to the API server but a check's, once a validation period.
pub(crate) async fn run(
    context: std::sync::Arc<Context>,
    locations: Store<BackupStorageLocation>,
    backups: Store<Backup>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut due = Due::default();
    tokio::pin!(shutdown);
    loop {
        let ticked = tick(&context, &locations, &backups, &mut due);
        if let Err(error) = super::guarded("the storage location loop".into(), ticked).await {
            tracing::warn!("storage locations: {error}");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn tick(
    context: &Context,
    locations: &Store<BackupStorageLocation>,
    backups: &Store<Backup>,
    due: &mut Due,
) -> Result<(), ReconcileError> {
    if !is_ready(locations) {
        return Ok(());
    }
    let locations = locations.state();
    due.forget_all_but(&locations.iter().map(|l| l.name_any()).collect());
    let api = context.api::<BackupStorageLocation>();
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
        let opened = open_cached(context, &location, validate, due).await;
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
        if reachable.is_err() {
            // Opened again at the next check: the Secret may be what is wrong.
            due.opened.remove(&name);
        }
        // One status write at most, and only for news: a check's result once a validation period (or a
        // change of availability), the sync time when a sync changed something or the time shown is older
        // than both periods.
        let mut status = serde_json::Map::new();
        if validate || reachable.is_ok() != was_available {
            due.validated.insert(name.clone(), Instant::now());
            let (phase, message) = match &reachable {
                Ok(()) => (LocationPhase::Available, None),
                Err(message) => (LocationPhase::Unavailable, Some(message.clone())),
            };
            if reachable.is_ok() != was_available {
                tracing::info!(location = %name, "location is {}", if reachable.is_ok() { "Available" } else { "Unavailable" });
            }
            status.insert("phase".into(), json!(phase));
            status.insert("message".into(), json!(message));
            status.insert("lastValidationTime".into(), json!(Time(Timestamp::now())));
        }
        match (sync, synced, reachable) {
            (true, Some(synced), _) => {
                let changed = synced.created + synced.removed > 0;
                if changed {
                    tracing::info!(location = %name, created = synced.created, removed = synced.removed, "bucket synced");
                }
                if changed || sync_time_is_old(&location, validation_every.max(sync_every)) {
                    status.insert("lastSyncedTime".into(), json!(Time(Timestamp::now())));
                }
            }
            (true, None, Err(error)) if opened.is_ok() => tracing::warn!(location = %name, "sync failed: {error}"),
            _ => {}
        }
        if !status.is_empty() {
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
                .await
                .doing(|| format!("updating the status of location {name}"))?;
        }
    }
    Ok(())
}

/// The location opened: the one kept since its spec last changed, unless it is being checked (then its
/// Secret is read again).
async fn open_cached(
    context: &Context,
    location: &BackupStorageLocation,
    validate: bool,
    due: &mut Due,
) -> Result<OpenLocation, LocationProblem> {
    let name = location.name_any();
    let generation = location.metadata.generation;
    if !validate
        && let Some((opened_at, open)) = due.opened.get(&name)
        && *opened_at == generation
    {
        return Ok(open.clone());
    }
    let open = open_object(context, location.clone()).await?;
    due.opened.insert(name, (generation, open.clone()));
    Ok(open)
}

/// Whether the sync time the location shows is missing or older than `every`.
fn sync_time_is_old(location: &BackupStorageLocation, every: Duration) -> bool {
    let shown = location.status.as_ref().and_then(|s| s.last_synced_time.as_ref());
    shown.is_none_or(|time| Timestamp::now().duration_since(time.0).unsigned_abs() >= every.max(Duration::from_secs(1)))
}
