//! The one retry policy for requests to the API server, with two strengths. [`retrying`]: a request answered
//! "busy" (429, 503, 504, as for a while after a CRD is established: "storage is (re)initializing") is sent
//! again a few times within about two seconds. [`retrying_patiently`]: for a write that must not be lost
//! (the final status of a backup), any failure that may pass later is retried for about eight seconds.
//! kube's own retry (fifteen attempts over five minutes) is switched off in [`crate::client`]: an
//! unavailable aggregated API answers 503 to discovery, and that must cost a backup a warning, not minutes.

use std::{future::Future, time::Duration};

use crate::errors::ErrorKind;

/// Attempts of a request the API server answered busy, and the first pause between them (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Attempts of a write that must not be lost.
const PATIENT_ATTEMPTS: u32 = 6;

/// Runs `request`, and again when the API server answers busy, a few times within about two seconds.
pub async fn retrying<T, F: Future<Output = Result<T, kube::Error>>>(
    request: impl FnMut() -> F,
) -> Result<T, kube::Error> {
    retry(ATTEMPTS, |kind| kind == ErrorKind::Busy, request).await
}

/// Runs `request`, and again on any failure that may pass later (busy, a server error, the connection),
/// six times within about eight seconds: for writes that must not be lost to a passing failure.
pub async fn retrying_patiently<T, F: Future<Output = Result<T, kube::Error>>>(
    request: impl FnMut() -> F,
) -> Result<T, kube::Error> {
    retry(PATIENT_ATTEMPTS, ErrorKind::may_pass_later, request).await
}

async fn retry<T, F: Future<Output = Result<T, kube::Error>>>(
    attempts: u32,
    again: impl Fn(ErrorKind) -> bool,
    mut request: impl FnMut() -> F,
) -> Result<T, kube::Error> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match request().await {
            Err(error) if again(ErrorKind::of(&error)) && attempt < attempts => {
                tracing::debug!("{}; asking again in {pause:?}", crate::errors::describe(&error));
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}
