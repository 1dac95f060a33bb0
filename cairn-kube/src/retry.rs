//! The one retry policy for requests to the API server: a request answered "busy" (429, 503, 504, as for
//! a while after a CRD is established: "storage is (re)initializing") is sent again a few times within about
//! two seconds. kube's own retry (fifteen attempts over five minutes) is switched off in [`crate::client`]:
//! an unavailable aggregated API answers 503 to discovery, and that must cost a backup a warning, not minutes.
//! Callers that wait longer (following an object) decide with [`crate::errors::ErrorKind::may_pass_later`].

use std::{future::Future, time::Duration};

use crate::errors::ErrorKind;

/// Attempts of a request the API server answered busy, and the first pause between them (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Runs `request`, and again when the API server answers busy, a few times within about two seconds.
pub async fn retrying<T, F: Future<Output = Result<T, kube::Error>>>(
    mut request: impl FnMut() -> F,
) -> Result<T, kube::Error> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match request().await {
            Err(error) if ErrorKind::of(&error) == ErrorKind::Busy && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}
