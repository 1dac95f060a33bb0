//! Requests the API server answered with a transient failure (429, 503, 504), asked again a few times: it
//! answers so for a moment after a CRD is established ("storage is (re)initializing") and while it starts.

use std::{future::Future, time::Duration};

/// Attempts of a request the API server answered with a transient failure, and the first pause between them.
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Runs `request` again when the API server answers 429, 503 or 504 (as it does for a while after a CRD is
/// established: "storage is (re)initializing"), a few times within about two seconds.
pub(crate) async fn retrying<T, F: Future<Output = Result<T, kube::Error>>>(
    mut request: impl FnMut() -> F,
) -> Result<T, kube::Error> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match request().await {
            Err(kube::Error::Api(status)) if matches!(status.code, 429 | 503 | 504) && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}
