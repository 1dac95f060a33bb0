//! Requests counted where they arrive: the API server's own counters (`apiserver_request_total` and
//! `apiserver_response_sizes_sum` from its /metrics, which count every client), and an HTTP proxy on loopback
//! that counts the requests one process sends to the S3 server, by kind, and the bytes it gets back.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use kube::Client;

/// The API server's request counters at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiCounters {
    /// Requests by `VERB group/resource[/subresource]` (`VERB non-resource` for /metrics, /healthz...).
    pub by_kind: BTreeMap<String, f64>,
    /// Response bytes by the same key (LIST, GET, WATCH and non-resource GETs are measured; writes are not).
    pub bytes: BTreeMap<String, f64>,
}

impl ApiCounters {
    /// Reads the counters from the API server's /metrics with `client` (this GET is counted in the next
    /// reading, not in this one).
    pub(crate) async fn read(client: &Client) -> anyhow::Result<ApiCounters> {
        let text = client.request_text(http::Request::get("/metrics").body(Vec::new())?).await?;
        let mut counters = ApiCounters::default();
        for line in text.lines() {
            let (map, rest) = if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
                (&mut counters.by_kind, rest)
            } else if let Some(rest) = line.strip_prefix("apiserver_response_sizes_sum{") {
                (&mut counters.bytes, rest)
            } else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            *map.entry(series_key(labels)).or_insert(0.0) += value;
        }
        Ok(counters)
    }

    /// Every request counted.
    pub(crate) fn total(&self) -> f64 {
        self.by_kind.values().sum()
    }

    /// What changed from `earlier` to `self`.
    pub(crate) fn since(&self, earlier: &ApiCounters) -> ApiCounters {
        let minus = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| {
            now.iter()
                .map(|(key, value)| (key.clone(), value - then.get(key).copied().unwrap_or(0.0)))
                .filter(|(_, delta)| *delta > 0.0)
                .collect()
        };
        ApiCounters { by_kind: minus(&self.by_kind, &earlier.by_kind), bytes: minus(&self.bytes, &earlier.bytes) }
    }

    /// Requests to `cairn.dev` resources only: no control-plane component sends those.
    pub(crate) fn cairn(&self) -> f64 {
        self.by_kind.iter().filter(|(key, _)| key.contains(" cairn.dev/")).map(|(_, v)| v).sum()
    }

    /// Response bytes in all.
    pub(crate) fn total_bytes(&self) -> f64 {
        self.bytes.values().sum()
    }

    /// The kinds with the most requests, as `VERB group/resource N (bytes)` parts.
    pub(crate) fn top(&self, count: usize) -> String {
        let mut kinds: Vec<(&String, &f64)> = self.by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.total_cmp(a.1));
        kinds
            .iter()
            .take(count)
            .map(|(key, n)| match self.bytes.get(*key) {
                Some(bytes) if *bytes > 0.0 => format!("{key} {n:.0} ({})", human_bytes(*bytes)),
                _ => format!("{key} {n:.0}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `VERB group/resource[/subresource]` from a series' labels.
fn series_key(labels: &str) -> String {
    let mut fields = BTreeMap::new();
    for pair in labels.split("\",") {
        if let Some((name, value)) = pair.split_once("=\"") {
            fields.insert(name.trim_start_matches(','), value.trim_end_matches('"'));
        }
    }
    let field = |name: &str| fields.get(name).copied().unwrap_or_default();
    let (verb, resource) = (field("verb"), field("resource"));
    if resource.is_empty() {
        return format!("{verb} non-resource");
    }
    let group = if field("group").is_empty() { "core" } else { field("group") };
    match field("subresource") {
        "" => format!("{verb} {group}/{resource}"),
        sub => format!("{verb} {group}/{resource}/{sub}"),
    }
}

/// `12.3 MiB`, `4.5 KiB`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    if bytes >= 1048576.0 { format!("{:.1} MiB", bytes / 1048576.0) } else { format!("{:.1} KiB", bytes / 1024.0) }
}

/// What a [`CountingProxy`] has seen so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct BucketCounts {
    /// Requests by kind: `LIST` (a GET with a `list-type` or `prefix` query), `GET`, `HEAD`, `PUT`, `POST`,
    /// `DELETE`.
    pub by_kind: BTreeMap<String, u64>,
    /// Bytes the S3 server sent back.
    pub bytes_down: u64,
}

impl BucketCounts {
    /// What changed from `earlier` to `self`.
    pub(crate) fn since(&self, earlier: &BucketCounts) -> BucketCounts {
        BucketCounts {
            by_kind: self
                .by_kind
                .iter()
                .map(|(kind, n)| (kind.clone(), n - earlier.by_kind.get(kind).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            bytes_down: self.bytes_down - earlier.bytes_down,
        }
    }

    /// Every request.
    pub(crate) fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// `LIST 10, GET 1 (1.2 MiB)`.
    pub(crate) fn describe(&self) -> String {
        let kinds: Vec<String> = self.by_kind.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        let kinds = if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") };
        format!("{kinds} ({} received)", human_bytes(self.bytes_down as f64))
    }
}

#[derive(Debug, Default)]
struct Tally {
    by_kind: Mutex<BTreeMap<String, u64>>,
    bytes_down: AtomicU64,
}

/// An HTTP/1.1 proxy on a free loopback port in front of the S3 server: it relays bytes untouched and
/// counts each request it sees go up (parsing request heads and skipping bodies by their Content-Length).
/// Plain threads, as `cairn_tests::proxy`.
#[derive(Debug, Clone)]
pub(crate) struct CountingProxy {
    address: SocketAddr,
    tally: Arc<Tally>,
}

impl CountingProxy {
    /// Starts relaying a free loopback port to `target`.
    pub(crate) fn start(target: SocketAddr) -> std::io::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let tally = Arc::new(Tally::default());
        let shared = tally.clone();
        std::thread::Builder::new().name("counting-proxy".into()).spawn(move || {
            for client in listener.incoming().flatten() {
                let tally = shared.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, target, &tally);
                });
            }
        })?;
        Ok(CountingProxy { address, tally })
    }

    /// The proxy's URL, to use as an S3 endpoint.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The counts so far.
    pub(crate) fn counts(&self) -> BucketCounts {
        BucketCounts {
            by_kind: self.tally.by_kind.lock().expect("tally lock").clone(),
            bytes_down: self.tally.bytes_down.load(Ordering::SeqCst),
        }
    }
}

fn relay(client: TcpStream, target: SocketAddr, tally: &Arc<Tally>) -> std::io::Result<()> {
    let server = TcpStream::connect(target)?;
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let up_tally = tally.clone();
    let upstream = std::thread::spawn(move || {
        let _ = count_up(&mut client_in, &mut server_out, &up_tally);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server.try_clone()?, client.try_clone()?);
    let mut buffer = [0u8; 16384];
    loop {
        let n = server_in.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        tally.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
        client_out.write_all(&buffer[..n])?;
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = upstream.join();
    Ok(())
}

/// Relays client to server, counting the request heads that pass.
fn count_up(from: &mut TcpStream, to: &mut TcpStream, tally: &Tally) -> std::io::Result<()> {
    let mut buffer = [0u8; 16384];
    let mut pending: Vec<u8> = Vec::new();
    let mut body_left: usize = 0;
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..n])?;
        pending.extend_from_slice(&buffer[..n]);
        loop {
            if body_left > 0 {
                let skipped = body_left.min(pending.len());
                pending.drain(..skipped);
                body_left -= skipped;
                if body_left > 0 {
                    break;
                }
            }
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else { break };
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let (kind, length) = request_kind(&head);
            *tally.by_kind.lock().expect("tally lock").entry(kind).or_insert(0) += 1;
            body_left = length;
        }
    }
}

/// A request head's kind and its body's length.
fn request_kind(head: &str) -> (String, usize) {
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("?"), parts.next().unwrap_or_default());
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let listing = query.split('&').any(|p| p.starts_with("list-type=") || p.starts_with("prefix="));
    let kind = if method == "GET" && listing { "LIST".to_owned() } else { method.to_owned() };
    (kind, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_keyed_by_verb_group_and_resource() {
        let labels = r#"code="200",component="apiserver",dry_run="",group="cairn.dev",resource="backups",scope="namespace",subresource="status",verb="PATCH",version="v1""#;
        assert_eq!(series_key(labels), "PATCH cairn.dev/backups/status");
        assert_eq!(series_key(r#"code="200",group="",resource="",verb="GET""#), "GET non-resource");
        assert_eq!(series_key(r#"group="",resource="pods",subresource="",verb="LIST""#), "LIST core/pods");
    }

    #[test]
    fn s3_listings_are_told_from_reads() {
        assert_eq!(request_kind("GET /b?list-type=2&prefix=x HTTP/1.1\r\nHost: h").0, "LIST");
        assert_eq!(request_kind("GET /b/backups/x/cairn-backup.json HTTP/1.1").0, "GET");
        assert_eq!(request_kind("PUT /b/k HTTP/1.1\r\ncontent-length: 12").1, 12);
    }
}
