//! How Cairn talks to the API server: clients built with kube's five-minute retry switched off (the policy
//! is [`crate::retry`]'s), and raw GETs of request paths that discovery built.

/// A client for `config` with Cairn's retry policy, on sockets with Nagle's algorithm off.
///
/// kube's own stack leaves Nagle on; a new connection's first request then waits for the ACK of the TLS
/// handshake's last flight, which the API server delays by up to 40 ms: a backup that opens four connections
/// lost a third of its fixed cost (80 ms with Nagle, 40 ms without, on loopback). This is kube's stack
/// (`ClientBuilder::try_from`) with that one setting changed and the same timeouts and layers; a kubeconfig
/// that names a proxy keeps kube's own stack, which reports that proxies are not built in.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
    use kube::client::ConfigExt;
    use tower::{BoxError, ServiceBuilder};

    config.default_retry = false;
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let mut connector = hyper_timeout::TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(request_trace())
        .map_err(BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Debug spans for each request, as kube's stack writes them (`CAIRN_LOG=debug`): method, URL, status.
fn request_trace() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&http::Request<kube::client::Body>) -> tracing::Span + Clone,
> {
    tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &http::Request<kube::client::Body>| {
        tracing::debug_span!(
            "HTTP",
            http.method = %request.method(),
            http.url = %request.uri(),
            otel.name = request.extensions().get::<&'static str>().unwrap_or(&"HTTP"),
        )
    })
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
