//! A TCP proxy in front of the S3 server, for tests of slow and failing links: it can slow what the server
//! sends to a given rate, and cut every connection once it has relayed a number of bytes more (a network
//! that fails mid-transfer while new, short requests still go through). Plain threads, so it outlives
//! the runtime of any one test.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// What the proxy does to traffic, changeable while it runs.
#[derive(Debug, Default)]
struct Knobs {
    /// Bytes per second from the server to the client; 0 is unlimited.
    rate: AtomicU64,
    /// Whether connections are cut after `cut_after` more bytes.
    cutting: AtomicBool,
    /// Bytes a connection may relay from the server once cutting starts.
    cut_after: AtomicU64,
    /// Connections cut so far.
    cuts: AtomicU64,
}

/// A proxy on a free loopback port, forwarding to `target`.
#[derive(Debug, Clone)]
pub struct Proxy {
    address: SocketAddr,
    knobs: Arc<Knobs>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target`, at full speed.
    pub fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let knobs = Arc::new(Knobs::default());
        let shared = knobs.clone();
        std::thread::Builder::new().name("cairn-test-proxy".into()).spawn(move || {
            for client in listener.incoming().flatten() {
                let knobs = shared.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, target, &knobs);
                });
            }
        })?;
        Ok(Proxy { address, knobs })
    }

    /// The proxy's URL, to use as an S3 endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Limits what the server sends to `bytes_per_second` (0: unlimited).
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.knobs.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// From now on, every connection (open or new) is cut once it has relayed `bytes` more from the server:
    /// long transfers fail, short requests still pass.
    pub fn cut_after(&self, bytes: u64) {
        self.knobs.cut_after.store(bytes, Ordering::SeqCst);
        self.knobs.cutting.store(true, Ordering::SeqCst);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.knobs.cuts.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, target: SocketAddr, knobs: &Knobs) -> std::io::Result<()> {
    let server = TcpStream::connect(target)?;
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let result = downstream(&server, &client, knobs);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = upstream.join();
    result
}

/// Copies server to client, at the rate set, cutting when told to.
fn downstream(mut server: &TcpStream, mut client: &TcpStream, knobs: &Knobs) -> std::io::Result<()> {
    let mut buffer = [0u8; 1024];
    let mut since_cutting: Option<u64> = None;
    loop {
        let n = server.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        if knobs.cutting.load(Ordering::SeqCst) {
            let relayed = since_cutting.get_or_insert(0);
            *relayed += n as u64;
            if *relayed > knobs.cut_after.load(Ordering::SeqCst) {
                knobs.cuts.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
        }
        client.write_all(&buffer[..n])?;
        // Each chunk waits its share of a second: an idle connection earns no burst.
        let rate = knobs.rate.load(Ordering::SeqCst);
        if rate > 0 {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
}
