//! How Cairn talks to the API server. kube's built-in retry (fifteen attempts over about five minutes for
//! 429, 503 and 504) is switched off: an unavailable aggregated API answers 503 to discovery, and that
//! must cost a backup a warning, not minutes. Reads that matter are retried here instead, three times
//! within a few seconds.

use std::time::Duration;

/// Attempts of a retried request, and the first pause between them (doubled each time).
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// A client for `config` with Cairn's retry policy.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

fn transient(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 429 | 503 | 504))
}

/// GETs `path` and returns the body, retrying transient failures (429, 503, 504) a few times.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let request = http::Request::get(path).body(Vec::new()).expect("a GET request builds");
        match client.request_text(request).await {
            Err(error) if transient(&error) && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// An API error in words: the server's message and HTTP code, without kube's debug dump.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}
