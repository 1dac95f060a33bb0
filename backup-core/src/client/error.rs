//! What can go wrong talking to a Cairn server, in words that name the object, the problem and the fix.

use std::time::Duration;

use crate::duration::format_duration;

/// Why a request to the Cairn server's objects failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The object does not exist.
    #[error("no {kind} named {name:?} in namespace {namespace:?}{}", listing_hint(kind))]
    NotFound {
        /// Its kind (`Backup`, `Schedule`, ...).
        kind: String,
        /// Its name.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// An object of that kind and name already exists.
    #[error("{kind} {name:?} already exists in namespace {namespace:?}: choose another name, or delete it first")]
    AlreadyExists {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The namespace does not exist, so no server runs there.
    #[error(
        "namespace {namespace:?} does not exist, so no Cairn server runs there: install one with `cairn install`, or pass --namespace NAME where it runs"
    )]
    NoNamespace {
        /// The namespace.
        namespace: String,
    },
    /// Nobody processed a ServerStatusRequest in time.
    #[error(
        "no Cairn server answered in namespace {namespace:?} within {}: install one with `cairn install`, or pass --namespace NAME where it runs",
        format_duration(*.timeout)
    )]
    NoServer {
        /// The namespace asked.
        namespace: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A request was not processed in time.
    #[error(
        "the Cairn server in namespace {namespace:?} did not answer a {request} within {}: check that it runs with `cairn version`",
        format_duration(*.timeout)
    )]
    NoAnswer {
        /// The request's kind.
        request: String,
        /// The namespace.
        namespace: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The object was deleted while it was followed.
    #[error("{kind} {name:?} was deleted from namespace {namespace:?} while waiting for it")]
    Vanished {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The server answered a DownloadRequest with an error.
    #[error("the Cairn server cannot provide the {file} of {name:?}: {reason}")]
    Download {
        /// Which file (`BackupLog`, ...).
        file: String,
        /// The backup or restore.
        name: String,
        /// The server's reason.
        reason: String,
    },
    /// The API server refused or failed a request.
    #[error("{action} failed: {reason}")]
    Api {
        /// What was attempted.
        action: String,
        /// The API server's answer.
        reason: String,
    },
}

impl ClientError {
    /// An API failure while doing `action`.
    pub(crate) fn api(action: String, error: &kube::Error) -> ClientError {
        ClientError::Api { action, reason: crate::apiclient::describe(error) }
    }
}

/// How a person lists objects of `kind`, for "not found" messages.
fn listing_hint(kind: &str) -> &'static str {
    match kind {
        "Backup" => "; `cairn backup get` lists them",
        "Restore" => "; `cairn restore get` lists them",
        "Schedule" => "; `cairn schedule get` lists them",
        "BackupStorageLocation" => "; `cairn backup-location get` lists them",
        _ => "",
    }
}
