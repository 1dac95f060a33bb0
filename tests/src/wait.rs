//! Waiting in tests for something the cluster does in its own time: one poll loop with a deadline and a
//! message naming what did not happen.

use std::time::Duration;

/// Polls `check` every 200 ms until it returns `Some`, and returns its value; panics after `timeout` naming
/// `what`.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
