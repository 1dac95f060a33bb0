//! How Cairn talks to the API server: clients built with kube's five-minute retry switched off (the policy
//! is [`crate::retry`]'s), and raw GETs of request paths that discovery built.

/// A client for `config` with Cairn's retry policy.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// GETs `path` and returns the body as text, retried while the API server answers busy.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    let bytes = get_bytes(client, path).await?;
    String::from_utf8(Vec::from(bytes)).map_err(kube::Error::FromUtf8)
}

/// GETs `path` and returns the body as received, retried while the API server answers busy: no copy beyond
/// gathering it (kube's `request_text` makes one more, megabytes per list page in flight for a backup).
/// Error statuses become [`kube::Error::Api`] errors, as kube makes them.
pub async fn get_bytes(client: &kube::Client, path: &str) -> Result<bytes::Bytes, kube::Error> {
    crate::retry::retrying(|| async {
        let request = http::Request::get(path).body(kube::client::Body::empty()).expect("a GET request builds");
        request_bytes(client, request).await
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
        .body(kube::client::Body::from(serde_json::to_vec(body).expect("JSON serializes")))
        .expect("a request builds");
    request_bytes(client, request).await.map(drop)
}

/// Sends `request` and returns the response's body as received (not checked as text). Error statuses
/// become [`kube::Error::Api`] errors, as kube makes them.
async fn request_bytes(
    client: &kube::Client,
    request: http::Request<kube::client::Body>,
) -> Result<bytes::Bytes, kube::Error> {
    use http_body_util::BodyExt;
    let response = client.send(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_client_error() || status.is_server_error() {
        let text = String::from_utf8_lossy(&body);
        let problem = serde_json::from_str::<kube::core::Status>(&text).unwrap_or_else(|_| {
            kube::core::Status::failure(text.trim(), "Failed to parse error data").with_code(status.as_u16())
        });
        return Err(kube::Error::Api(problem.boxed()));
    }
    Ok(body)
}
