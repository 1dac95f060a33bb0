//! What can go wrong talking to a Cairn server, in words that name the object, the problem and the fix.

use std::time::Duration;

use backup_core::backup::{deletion::DeletionRefused, placement::PlacementError};

use cairn_kube::duration::format_duration;

/// Why a request to the Cairn server's objects failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
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
    /// An object followed with a timeout had not reached the awaited phase when the timeout passed.
    #[error(
        "gave up waiting for {kind} {name:?} in namespace {namespace:?} after {}; the server carries on with it",
        format_duration(*.timeout)
    )]
    TimedOut {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The namespace serves Cairn's objects but no server works on them: its Lease is missing, released or
    /// stale, and no server answered a status request.
    #[error(
        "no Cairn server is running in namespace {namespace:?} ({lease}, and no server answered a status request \
         within {}); run `cairn install`, start backup-server, or pass --storage URL",
        format_duration(*.waited)
    )]
    NotRunning {
        /// The namespace.
        namespace: String,
        /// What the Lease says, as a clause: `its Lease cairn-server is missing`, ....
        lease: String,
        /// How long the status request waited.
        waited: Duration,
    },
    /// No location, or not the one named, takes what is asked.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The backup cannot be deleted now.
    #[error(transparent)]
    DeletionRefused(#[from] DeletionRefused),
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
        /// Which file (`RunLog`, ...).
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
        ClientError::Api { action, reason: describe(error) }
    }
}

/// A failed request in words: the API server's answer, or for a connection that failed, each cause in the
/// chain once (`ServiceError: client error (Connect): tcp connect error: Connection refused (os error 111)`).
fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(_) = error {
        return cairn_kube::errors::describe(error);
    }
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let message = cause.to_string();
        if !last.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = cause.source();
    }
    text
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
