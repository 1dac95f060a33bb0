//! One environment per test process, shared by every test, and what each test takes from it: a Kubernetes
//! client, namespaces of its own and a bucket prefix of its own.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use backup_core::store::{Location, S3Credentials, Store};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    EnvError, EnvInfo, Environment, NodeInfo,
    environment::{process_state_dir, random_hex, remove_stale_state_dirs},
};

/// Names a state directory from `cairn-testenv up` whose environment the tests use instead of starting one.
pub const REUSE_VARIABLE: &str = "CAIRN_TESTENV";

static SHARED: OnceLock<Result<EnvInfo, String>> = OnceLock::new();
static NODE: OnceLock<Result<NodeInfo, String>> = OnceLock::new();
static KWOK: OnceLock<Result<(), String>> = OnceLock::new();
/// Requests to the thread that owns this process's environment (its processes are tied to that thread).
static REQUESTS: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

/// What the environment's thread is asked to do.
enum Request {
    /// Start the real node, and say how to reach it.
    StartNode(mpsc::Sender<Result<NodeInfo, String>>),
    /// Start KWOK.
    StartKwok(mpsc::Sender<Result<(), String>>),
}
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static RUN_ID: OnceLock<String> = OnceLock::new();

/// A Kubernetes client for the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> Result<Client, EnvError> {
    let unusable =
        |e: kube::config::KubeconfigError| EnvError::Kubeconfig { path: path.to_path_buf(), reason: e.to_string() };
    let kubeconfig = Kubeconfig::read_from(path).map_err(unusable)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(unusable)?;
    cairn_kube::client::client(config).map_err(EnvError::Kube)
}

/// The environment shared by the tests of this process.
#[derive(Debug, Clone, Copy)]
pub struct TestEnv {
    info: &'static EnvInfo,
}

impl TestEnv {
    /// The shared environment, started on first use. Panics with the reason (one line naming what is
    /// missing, or a component's log) when it cannot start, so every test reports the same cause.
    pub fn get() -> TestEnv {
        let shared = SHARED.get_or_init(|| match std::env::var_os(REUSE_VARIABLE) {
            Some(dir) => EnvInfo::read(Path::new(&dir)).map_err(|e| format!("{REUSE_VARIABLE}={}: {e}", dir.display())),
            None => start_for_this_process(),
        });
        match shared {
            Ok(info) => TestEnv { info },
            Err(reason) => panic!("the test environment is not available: {reason}"),
        }
    }

    /// The environment's real node (containerd and a kubelet), started on first use: tests that need no node
    /// pay nothing. Panics with the reason when it cannot start.
    pub fn node(&self) -> NodeInfo {
        let node = NODE.get_or_init(|| {
            if let Some(node) = &self.info.node {
                return Ok(node.clone());
            }
            let Some(requests) = REQUESTS.get() else {
                return Err(format!(
                    "the environment named by {REUSE_VARIABLE} runs no node: start it with `cairn-testenv up --node`"
                ));
            };
            let (reply, answer) = mpsc::channel();
            requests
                .lock()
                .expect("requests lock")
                .send(Request::StartNode(reply))
                .map_err(|_| "the environment thread is gone")?;
            answer.recv().map_err(|_| "the environment thread died while starting the node".to_owned())?
        });
        match node {
            Ok(node) => node.clone(),
            Err(reason) => panic!("the test node is not available: {reason}"),
        }
    }

    /// Makes sure KWOK runs, so that simulated nodes (`kwok::FakeNode`) can be created; started on first
    /// use. Panics with the reason when it cannot start.
    pub fn kwok(&self) {
        let started = KWOK.get_or_init(|| {
            if self.info.kwok {
                return Ok(());
            }
            let Some(requests) = REQUESTS.get() else {
                return Err(format!(
                    "the environment named by {REUSE_VARIABLE} runs no KWOK: start it with `cairn-testenv up --kwok`"
                ));
            };
            let (reply, answer) = mpsc::channel();
            requests
                .lock()
                .expect("requests lock")
                .send(Request::StartKwok(reply))
                .map_err(|_| "the environment thread is gone")?;
            answer.recv().map_err(|_| "the environment thread died while starting KWOK".to_owned())?
        });
        if let Err(reason) = started {
            panic!("KWOK is not available: {reason}");
        }
    }

    /// How to reach the environment.
    pub fn info(&self) -> &'static EnvInfo {
        self.info
    }

    /// A new admin client. Each test builds its own, on its own runtime.
    pub async fn client(&self) -> Client {
        client_from(&self.info.kubeconfig).await.expect("the test kubeconfig gives a client")
    }

    /// A unique name starting with `base`, lowercase, at most 63 characters.
    pub fn unique_name(&self, base: &str) -> String {
        let run = RUN_ID.get_or_init(|| random_hex(2));
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let suffix = format!("-{run}{id}");
        let base: String = base
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(63 - suffix.len())
            .collect();
        format!("{}{suffix}", base.trim_matches('-'))
    }

    /// Creates a namespace of this test's own, named after `base`, and waits until its `default`
    /// service account exists (so pods can be created in it). Returns its name.
    pub async fn namespace(&self, base: &str) -> String {
        let client = self.client().await;
        let name = self.unique_name(base);
        let namespace =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
        for _ in 0..300 {
            if matches!(accounts.get_opt("default").await, Ok(Some(_))) {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("namespace {name} got no default service account within 30 s: is kube-controller-manager running?");
    }

    /// A key prefix in the environment's bucket that no other test uses.
    pub fn bucket_prefix(&self, base: &str) -> String {
        self.unique_name(base)
    }

    /// The environment's bucket with `prefix`, as a storage location.
    pub fn s3_location(&self, prefix: &str) -> Location {
        self.info.storage_url(prefix).parse().expect("the test environment's storage URL parses")
    }

    /// The S3 server's credentials.
    pub fn s3_credentials(&self) -> S3Credentials {
        self.info.s3_credentials()
    }

    /// The bucket with `prefix`, opened with the environment's credentials.
    pub fn s3_store(&self, prefix: &str) -> Store {
        self.info.open_bucket(prefix).expect("the test bucket opens")
    }

    /// The S3 server's address, for a proxy in front of it.
    pub fn s3_address(&self) -> std::net::SocketAddr {
        let endpoint = self.info.s3_endpoint.trim_start_matches("http://");
        endpoint.parse().expect("the S3 endpoint is host:port on loopback")
    }

    /// The bucket with `prefix`, reached through `endpoint` (a proxy in front of the S3 server).
    pub fn s3_store_via(&self, prefix: &str, endpoint: &str) -> Store {
        let url = self.info.storage_url(prefix).replace(&self.info.s3_endpoint, endpoint);
        let location: Location = url.parse().expect("the storage URL parses");
        location.open(Some(&self.s3_credentials())).expect("the test bucket opens")
    }
}

/// Starts the environment on a thread that lives as long as the process: its processes are tied to that
/// thread, so they are killed when the test process ends, however it ends.
fn start_for_this_process() -> Result<EnvInfo, String> {
    remove_stale_state_dirs();
    let state_dir: PathBuf = process_state_dir();
    let (sender, receiver) = mpsc::channel();
    let (requests, incoming) = mpsc::channel();
    let _ = REQUESTS.set(Mutex::new(requests));
    std::thread::Builder::new()
        .name("cairn-testenv".into())
        .spawn(move || match Environment::start(&state_dir) {
            Ok(mut environment) => {
                let _ = sender.send(Ok(environment.info().clone()));
                for request in incoming {
                    match request {
                        Request::StartNode(reply) => {
                            let _ = reply.send(environment.start_node().map_err(|e| e.to_string()));
                        }
                        Request::StartKwok(reply) => {
                            let _ = reply.send(environment.start_kwok().map_err(|e| e.to_string()));
                        }
                    }
                }
                loop {
                    std::thread::park();
                }
            }
            Err(error) => {
                let _ = sender.send(Err(error.to_string()));
            }
        })
        .map_err(|e| format!("cannot start the environment thread: {e}"))?;
    let info = receiver.recv().map_err(|_| "the environment thread died while starting".to_owned())??;
    // Written past the test harness's output capture, so every run shows what it runs against.
    let _ = writeln!(
        std::io::stderr(),
        "cairn test environment: kube-apiserver {} at {}, S3 (cairn-s3) at {}, started in {:.1} s; state and logs in {}",
        info.kubernetes_version,
        info.apiserver_url,
        info.s3_endpoint,
        info.start_seconds,
        info.state_dir.display()
    );
    Ok(info)
}
