//! The server's HTTP endpoints: `GET /metrics` (Prometheus), `GET /healthz` (liveness) and `GET /readyz`
//! (readiness). Served with hyper 1 directly: three fixed routes need no router, and hyper is already
//! built for kube's client, so this adds only its server half.

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tokio::{net::TcpListener, sync::watch};

use crate::metrics::Metrics;

/// How long open connections get to finish their response at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The pause after a failed accept (such as too many open files), so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves the endpoints on `address` until `shutdown` resolves. `/readyz` answers 200 while `*ready.borrow()`
/// is true.
pub(crate) async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address} for metrics and health checks; pass a free address with --metrics-address")
    })?;
    serve_on(listener, metrics, ready, shutdown).await
}

/// [`serve`] on a listener that is already bound.
pub(crate) async fn serve_on(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }
    let endpoints = Arc::new(Endpoints { metrics, ready });
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("accepting a metrics or health connection failed: {error}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let endpoints = Arc::clone(&endpoints);
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = endpoints.respond(request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = connections.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("a metrics or health connection ended with an error: {error}");
            }
        });
    }
    drop(listener);
    // Kept-alive connections close after their current response; a stuck one is not waited for long.
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.shutdown()).await.is_err() {
        tracing::debug!("metrics or health connections still open at shutdown were dropped");
    }
    Ok(())
}

/// What the endpoints read: the metrics and the readiness flag.
struct Endpoints {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
}

impl Endpoints {
    /// The response to `method` on `path`; only GET is served.
    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
            return text(StatusCode::NOT_FOUND, "not found: the paths are /metrics, /healthz and /readyz\n");
        }
        if method != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
            return response;
        }
        match path {
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(Metrics::CONTENT_TYPE));
                response
            }
            "/readyz" if !*self.ready.borrow() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the server is starting\n")
            }
            _ => text(StatusCode::OK, "ok\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::oneshot,
    };

    use super::*;

    /// Sends one request over a fresh connection; returns the status line's code, the headers and the body.
    async fn request(address: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a complete response");
        let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    /// A server on a free loopback port, not ready yet.
    struct Running {
        address: SocketAddr,
        metrics: Arc<Metrics>,
        ready: watch::Sender<bool>,
        stop: oneshot::Sender<()>,
        server: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    impl Running {
        async fn start() -> Running {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let metrics = Arc::new(Metrics::new());
            let (ready, ready_rx) = watch::channel(false);
            let (stop, stop_rx) = oneshot::channel::<()>();
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            let server = tokio::spawn(serve_on(listener, Arc::clone(&metrics), ready_rx, shutdown));
            Running { address, metrics, ready, stop, server }
        }

        /// Triggers shutdown and expects the server to end cleanly.
        async fn stop(self) {
            self.stop.send(()).unwrap();
            self.server.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let server = Running::start().await;
        server.metrics.backup_attempt("nightly");
        let (status, headers, body) = request(server.address, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(headers.contains("content-type: application/openmetrics-text"), "{headers}");
        assert!(body.contains("cairn_backup_attempt_total{schedule=\"nightly\"} 1\n"), "{body}");
        server.stop().await;
    }

    #[tokio::test]
    async fn healthz_answers_ok_and_readyz_follows_the_ready_flag() {
        let server = Running::start().await;
        let (status, _, body) = request(server.address, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _, reason) = request(server.address, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert!(reason.starts_with("not ready: "), "{reason}");
        server.ready.send(true).unwrap();
        let (status, _, body) = request(server.address, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        server.stop().await;
    }

    #[tokio::test]
    async fn other_paths_and_methods_are_refused() {
        let server = Running::start().await;
        assert_eq!(request(server.address, "GET", "/").await.0, 404);
        let (status, headers, _) = request(server.address, "POST", "/metrics").await;
        assert_eq!(status, 405);
        assert!(headers.contains("allow: get"), "{headers}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_taken_address_is_named_with_the_flag_that_changes_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap();
        let (_ready, ready_rx) = watch::channel(true);
        let error = serve(address, Arc::new(Metrics::new()), ready_rx, std::future::pending()).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(&address.to_string()) && message.contains("--metrics-address"), "{message}");
    }
}
