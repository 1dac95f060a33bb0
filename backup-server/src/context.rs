//! What every reconciler shares: the client, the server's namespace and settings, metrics, the backup slot,
//! the names of the backups and restores this process is running, and the drains it carries out.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Intervals and defaults from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How often expired backups are collected.
    pub gc_frequency: Duration,
    /// How often a location's bucket is synchronised, unless the location says otherwise.
    pub sync_period: Duration,
    /// How often a location's availability is checked, unless the location says otherwise.
    pub validation_frequency: Duration,
    /// The TTL of backups that give none.
    pub default_ttl: String,
    /// The largest archive entry a restore reads.
    pub restore_max_object_size: u64,
}

impl From<&cairn_api::server::ServerSettings> for Settings {
    fn from(settings: &cairn_api::server::ServerSettings) -> Self {
        Settings {
            gc_frequency: settings.gc_frequency(),
            sync_period: settings.sync_period(),
            validation_frequency: settings.validation_frequency(),
            default_ttl: settings.default_backup_ttl.clone(),
            restore_max_object_size: settings.restore_max_object_size,
        }
    }
}

/// Shared by every reconciler.
pub(crate) struct Context {
    /// The cluster.
    pub client: Client,
    /// Where the server's objects live.
    pub namespace: String,
    /// Intervals and defaults.
    pub settings: Settings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// One backup runs at a time (Velero's default); the others wait, New, for the slot.
    pub backup_slot: Semaphore,
    /// Backups and restores this process is running: an InProgress object not in here was left by a
    /// server that stopped, and is marked Failed.
    pub running: Mutex<HashSet<String>>,
    /// The drains this process carries out, by NodeMaintenance uid: deleting the object stops its drain.
    pub drains: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Context {
    /// The namespaced API of `K` in the server's namespace.
    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Marks `key` as running in this process until the guard drops; false if it already is.
    pub(crate) fn start_running(self: &Arc<Self>, key: String) -> Option<RunningGuard> {
        let mut running = self.running.lock().expect("running lock");
        running.insert(key.clone()).then(|| RunningGuard { context: self.clone(), key })
    }

    /// Whether this process runs `key`.
    pub(crate) fn is_running(&self, key: &str) -> bool {
        self.running.lock().expect("running lock").contains(key)
    }
}

/// Removes its key from [`Context::running`] when dropped.
pub(crate) struct RunningGuard {
    context: Arc<Context>,
    key: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.context.running.lock().expect("running lock").remove(&self.key);
    }
}
