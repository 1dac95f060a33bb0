//! One reconciler per `cairn.dev/v1` resource, plus the periodic loops (location checks and bucket sync,
//! garbage collection). Each reconciler is thin: it decides from the object's phase, calls into
//! `backup-core`, and writes the outcome to the object's status.

pub mod backup;
pub mod deletion;
pub mod download;
pub mod gc;
pub mod locations;
pub mod restore;
pub mod schedule;
pub mod server_status;
pub mod sync;
pub mod totals;

use std::{fmt::Debug, future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Resource,
    runtime::{Controller, controller::Action, watcher},
};
use serde::de::DeserializeOwned;

use crate::context::Context;

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Adds what was being done to a kube error.
pub trait KubeContext<T> {
    /// Wraps the error with `action`.
    fn doing(self, action: impl FnOnce() -> String) -> Result<T, ReconcileError>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T, ReconcileError> {
        self.map_err(|source| ReconcileError::Kube { action: action(), source })
    }
}

/// A deletion's result, where "already gone" counts as done.
pub fn absent_ok<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

fn retry_later<K>(_object: Arc<K>, error: &ReconcileError, _context: Arc<Context>) -> Action {
    tracing::warn!("{error}; retrying in 5 s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs a reconciler for every object of `K` in the server's namespace until `shutdown` resolves.
pub async fn run_controller<K, F, Fut>(
    context: Arc<Context>,
    reconcile: F,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    Controller::new(context.api::<K>(), watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, retry_later, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!("reconcile: {error}");
            }
        })
        .await;
}
