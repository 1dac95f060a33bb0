//! How Cairn talks to the API server: clients built with kube's five-minute retry switched off (the policy
//! is [`crate::retry`]'s), and raw GETs of request paths that discovery built.

/// A client for `config` with Cairn's retry policy.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// GETs `path` and returns the body, retried while the API server answers busy.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    crate::retry::retrying(|| {
        let request = http::Request::get(path).body(Vec::new()).expect("a GET request builds");
        client.request_text(request)
    })
    .await
}

/// Sends `body` as JSON (or a merge patch, by `content_type`) with `method` to `path` and discards the
/// server's echo of the object.
pub async fn send_json(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(serde_json::to_vec(body).expect("JSON serializes"))
        .expect("a request builds");
    client.request_text(request).await.map(drop)
}
