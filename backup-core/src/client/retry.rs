//! Requests the API server answered with a transient failure (429, 503, 504), asked again a few times: it
//! answers so for a moment after a CRD is established ("storage is (re)initializing") and while it starts.
//! Also which failures may pass at all, for the callers that wait longer (following an object).

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

/// Whether `error` may pass if the request is sent again later: the connection failed or timed out, or the
/// API server answered 429 or 5xx. A 4xx answer (not found, forbidden, invalid) is final.
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("answer", "Reason").with_code(code).boxed())
    }

    #[test]
    fn throttling_and_server_errors_may_pass_but_client_errors_do_not() {
        for code in [429, 500, 503, 504] {
            assert!(is_transient(&answered(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!is_transient(&answered(code)), "{code}");
        }
    }
}
