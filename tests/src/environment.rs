//! Starting and stopping one environment: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and an
//! S3 server on free loopback ports, with the state (certificates, kubeconfig, data, logs) in one directory.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use backup_core::store::{Location, S3Credentials, Store, StoreError};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};

use crate::{
    EnvError,
    binaries::{Binaries, Versions},
    node::{NodeConfig, RealNode},
    pki::Pki,
    process::{Component, accepts_connections, free_port},
    s3::S3Server,
};

/// The bucket every environment's S3 server starts with.
pub const BUCKET: &str = "cairn-test";
/// The region the S3 clients are configured with (the server accepts any).
pub const REGION: &str = "us-east-1";
/// The S3 access key id of every environment (the secret key is random per environment).
pub const ACCESS_KEY_ID: &str = "cairn-test";

/// How to reach a running environment; written as `env.json` in its state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvInfo {
    /// The admin kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// The API server's URL.
    pub apiserver_url: String,
    /// The Kubernetes version the control plane runs.
    pub kubernetes_version: String,
    /// The S3 server's URL.
    pub s3_endpoint: String,
    /// The bucket created at start.
    pub s3_bucket: String,
    /// The region clients should sign for.
    pub s3_region: String,
    /// The S3 access key id.
    pub s3_access_key_id: String,
    /// The S3 secret access key.
    pub s3_secret_access_key: String,
    /// The state directory: certificates, kubeconfig, data, `logs/`.
    pub state_dir: PathBuf,
    /// How long the start took, in seconds.
    pub start_seconds: f64,
    /// The real node, once one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeInfo>,
    /// Whether KWOK runs (it simulates the nodes that carry its annotation).
    #[serde(default)]
    pub kwok: bool,
}

/// How to reach the environment's real node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The Node's name.
    pub name: String,
    /// The node's container runtime (containerd's socket).
    pub runtime_socket: PathBuf,
    /// Where its pods reach the host's loopback services: a pod connects to `pod_gateway:PORT` for a
    /// service listening on `127.0.0.1:PORT` (the S3 server, for one).
    pub pod_gateway: String,
    /// What it puts on the host, for checking that it is gone once the node stops.
    pub footprint: crate::node::NodeFootprint,
}

impl EnvInfo {
    /// Reads the `env.json` of a running environment's state directory.
    pub fn read(state_dir: &Path) -> Result<EnvInfo, EnvError> {
        let path = state_dir.join("env.json");
        let text = std::fs::read(&path)
            .map_err(|error| EnvError::Io { what: format!("reading {}", path.display()), error })?;
        serde_json::from_slice(&text).map_err(|e| EnvError::Io {
            what: format!("parsing {}", path.display()),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// The S3 server's credentials.
    pub fn s3_credentials(&self) -> S3Credentials {
        S3Credentials {
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        }
    }

    /// The environment's bucket with `prefix`, opened with its credentials.
    pub fn open_bucket(&self, prefix: &str) -> Result<Store, StoreError> {
        self.storage_url(prefix).parse::<Location>()?.open(Some(&self.s3_credentials()))
    }

    /// The environment's bucket under `prefix` as a plain object store client with `credentials`, apart from
    /// Cairn's `Store`: for tests of the S3 server itself.
    pub fn raw_bucket(
        &self,
        prefix: &str,
        credentials: &S3Credentials,
    ) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.s3_bucket)
            .with_endpoint(&self.s3_endpoint)
            .with_allow_http(true)
            .with_region(&self.s3_region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .build()
            .expect("the test bucket's client builds");
        std::sync::Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    }

    /// What a real node of this environment needs (a test may start nodes of its own with it).
    pub fn node_config(&self) -> Result<NodeConfig, EnvError> {
        let binaries = Binaries::ensure()?;
        Ok(NodeConfig {
            kubelet: binaries.kubelet.clone(),
            kubeconfig: self.kubeconfig.clone(),
            ca_cert: self.state_dir.join("pki/ca.crt"),
            state_dir: self.state_dir.clone(),
            images: Vec::new(),
            apiserver_port: self.apiserver_port()?,
        })
    }

    /// The API server's port on 127.0.0.1.
    pub fn apiserver_port(&self) -> Result<u16, EnvError> {
        self.apiserver_url.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).ok_or_else(|| EnvError::Io {
            what: format!("reading the API server's port from {}", self.apiserver_url),
            error: std::io::ErrorKind::InvalidData.into(),
        })
    }

    /// The S3 server's endpoint as pods on the real node reach it (its port at the pod network's gateway).
    pub fn s3_endpoint_for_pods(&self, node: &NodeInfo) -> String {
        let port = self.s3_endpoint.rsplit_once(':').map_or("", |(_, port)| port);
        format!("http://{}:{port}", node.pod_gateway)
    }

    /// The environment's bucket as a Cairn storage location URL, with `prefix` inside it.
    pub fn storage_url(&self, prefix: &str) -> String {
        let path = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        format!("s3://{}{path}?endpoint={}&region={}", self.s3_bucket, self.s3_endpoint, self.s3_region)
    }
}

/// A running environment. Dropping it stops every process (the state directory stays for inspection).
#[derive(Debug)]
pub struct Environment {
    info: EnvInfo,
    components: Vec<Component>,
    s3: S3Server,
    node: Option<RealNode>,
    kwok: Option<Component>,
}

impl Environment {
    /// How to reach the environment.
    pub fn info(&self) -> &EnvInfo {
        &self.info
    }

    /// Name and process id of every component, in start order.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut processes: Vec<_> = self.components.iter().map(|c| (c.name(), c.pid())).collect();
        processes.push(("cairn-s3", self.s3.pid()));
        processes
    }

    /// Starts a fresh environment with its state in `state_dir` (which must not hold another environment's
    /// state), building the binaries first if they are not cached. Blocks until every component is ready.
    /// The processes are tied to the calling thread: they die when it ends.
    pub fn start(state_dir: &Path) -> Result<Environment, EnvError> {
        let started = Instant::now();
        let binaries = Binaries::ensure()?;
        let versions = Versions::pinned();
        let io = |what: String| move |error| EnvError::Io { what, error };
        for dir in ["logs", "etcd", "s3", "serving"] {
            let dir = state_dir.join(dir);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let pki = Pki::generate(&state_dir.join("pki"))?;
        let log = |name: &str| state_dir.join("logs").join(format!("{name}.log"));
        let path = |p: &Path| p.display().to_string();
        let mut components = Vec::new();

        // etcd and the S3 server need nothing else: start both, then wait for both.
        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            "--name=cairn".into(),
            format!("--data-dir={}", path(&state_dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=cairn={peer_url}"),
            "--unsafe-no-fsync".into(),
            "--quota-backend-bytes=8589934592".into(),
            "--log-level=warn".into(),
        ];
        let mut etcd = Component::start("etcd", &binaries.etcd, &etcd_args, log("etcd"), vec![etcd_port, peer_port])?;
        let s3 = S3Server::start(&binaries, &state_dir.join("s3"), log("cairn-s3"), None)?;
        etcd.wait_until(Duration::from_secs(30), || etcd_healthy(etcd_port))?;
        components.push(etcd);

        let apiserver_port = free_port()?;
        let apiserver_url = format!("https://127.0.0.1:{apiserver_port}");
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={apiserver_port}"),
            format!("--cert-dir={}", path(&state_dir.join("serving"))),
            format!("--tls-cert-file={}", path(&pki.serving_cert)),
            format!("--tls-private-key-file={}", path(&pki.serving_key)),
            format!("--client-ca-file={}", path(&pki.ca_cert)),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", path(&pki.service_account_public_key)),
            format!("--service-account-signing-key-file={}", path(&pki.service_account_key)),
            "--service-cluster-ip-range=10.0.0.0/16".into(),
            "--authorization-mode=Node,RBAC".into(),
            // Kubelets are reached (logs, exec) with the admin certificate; joining nodes with bootstrap tokens.
            format!("--kubelet-client-certificate={}", path(&pki.admin_cert)),
            format!("--kubelet-client-key={}", path(&pki.admin_key)),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--enable-bootstrap-token-auth=true".into(),
            "--allow-privileged=true".into(),
            // A single loopback API server has no endpoints worth reconciling.
            "--endpoint-reconciler-type=none".into(),
            // Webhooks and aggregated APIs are reached through their Services' endpoints, never their cluster
            // IPs: the service range is not routed here, and nothing may dial outside loopback.
            "--enable-aggregator-routing=true".into(),
            // Load tests and benchmarks must measure Cairn, not the server's rate limits.
            "--enable-priority-and-fairness=false".into(),
            "--max-requests-inflight=0".into(),
            "--max-mutating-requests-inflight=0".into(),
        ];
        let mut apiserver = Component::start(
            "kube-apiserver",
            &binaries.apiserver,
            &apiserver_args,
            log("kube-apiserver"),
            vec![apiserver_port],
        )?;
        let kubeconfig = state_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &apiserver_url, &pki)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a runtime for readiness checks".into()))?;
        let client = runtime.block_on(crate::shared::client_from(&kubeconfig))?;
        apiserver.wait_until(Duration::from_secs(120), || runtime.block_on(apiserver_ready(&client)))?;
        components.push(apiserver);

        let (kcm_port, scheduler_port) = (free_port()?, free_port()?);
        let kubeconfig_flags = |port: u16| {
            let k = path(&kubeconfig);
            vec![
                format!("--kubeconfig={k}"),
                format!("--authentication-kubeconfig={k}"),
                format!("--authorization-kubeconfig={k}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", path(&state_dir.join("serving"))),
            ]
        };
        let mut kcm_args = kubeconfig_flags(kcm_port);
        kcm_args.extend([
            format!("--service-account-private-key-file={}", path(&pki.service_account_key)),
            format!("--root-ca-file={}", path(&pki.ca_cert)),
            "--kube-api-qps=1000".into(),
            "--kube-api-burst=1000".into(),
            // kubeadm's: bootstrap tokens sign `kube-public/cluster-info` and expire.
            "--controllers=*,bootstrapsigner,tokencleaner".into(),
        ]);
        let mut kcm = Component::start(
            "kube-controller-manager",
            &binaries.controller_manager,
            &kcm_args,
            log("kube-controller-manager"),
            vec![kcm_port],
        )?;
        let mut scheduler = Component::start(
            "kube-scheduler",
            &binaries.scheduler,
            &kubeconfig_flags(scheduler_port),
            log("kube-scheduler"),
            vec![scheduler_port],
        )?;
        // The service-account controller creating `default/default` shows the controller manager works.
        kcm.wait_until(Duration::from_secs(90), || {
            accepts_connections(kcm_port) && runtime.block_on(default_service_account_exists(&client))
        })?;
        scheduler.wait_until(Duration::from_secs(60), || accepts_connections(scheduler_port))?;
        components.extend([kcm, scheduler]);
        runtime.block_on(publish_cluster_info(&client, &apiserver_url, &pki.ca_pem))?;

        let info = EnvInfo {
            kubeconfig,
            apiserver_url,
            kubernetes_version: versions.kubernetes,
            s3_endpoint: s3.endpoint.clone(),
            s3_bucket: BUCKET.into(),
            s3_region: REGION.into(),
            s3_access_key_id: ACCESS_KEY_ID.into(),
            s3_secret_access_key: s3.secret_access_key.clone(),
            state_dir: state_dir.to_path_buf(),
            start_seconds: started.elapsed().as_secs_f64(),
            node: None,
            kwok: false,
        };
        let env_json = state_dir.join("env.json");
        let json = serde_json::to_vec_pretty(&info).expect("EnvInfo serializes");
        std::fs::write(&env_json, json).map_err(io(format!("writing {}", env_json.display())))?;
        Ok(Environment { info, components, s3, node: None, kwok: None })
    }

    /// Starts the real node (containerd and a kubelet), once; later calls return the running one. The
    /// processes are tied to the calling thread, as the control plane's are.
    pub fn start_node(&mut self) -> Result<NodeInfo, EnvError> {
        if let Some(node) = &self.info.node {
            return Ok(node.clone());
        }
        let node = RealNode::start(&self.info.node_config()?)?;
        let info = NodeInfo {
            name: node.name.clone(),
            runtime_socket: node.runtime_socket.clone(),
            pod_gateway: node.network.gateway.clone(),
            footprint: node.footprint.clone(),
        };
        self.node = Some(node);
        self.info.node = Some(info.clone());
        self.write_info()?;
        Ok(info)
    }

    /// Starts KWOK, once: simulated nodes are then created by the tests that need them
    /// (`kwok::FakeNode`). Its process is tied to the calling thread.
    pub fn start_kwok(&mut self) -> Result<(), EnvError> {
        if self.kwok.is_some() {
            return Ok(());
        }
        let binaries = Binaries::ensure()?;
        let log = self.info.state_dir.join("logs/kwok.log");
        self.kwok = Some(crate::kwok::start(&binaries, &self.info.kubeconfig, &log)?);
        self.info.kwok = true;
        self.write_info()
    }

    fn write_info(&self) -> Result<(), EnvError> {
        let env_json = self.info.state_dir.join("env.json");
        let json = serde_json::to_vec_pretty(&self.info).expect("EnvInfo serializes");
        std::fs::write(&env_json, json)
            .map_err(|error| EnvError::Io { what: format!("writing {}", env_json.display()), error })
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // The nodes first: their pods talk to the API server until they are gone.
        drop(self.kwok.take());
        drop(self.node.take());
        // Stop in reverse start order: controllers before the API server, the API server before etcd.
        while let Some(component) = self.components.pop() {
            drop(component);
        }
        let _ = std::fs::remove_file(self.info.state_dir.join("env.json"));
    }
}

fn etcd_healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

async fn apiserver_ready(client: &kube::Client) -> bool {
    let request = http::Request::get("/readyz").body(Vec::new()).expect("static request");
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

/// What `kubeadm init` publishes for nodes that join: `kube-public/cluster-info`, a kubeconfig with the
/// server and its CA that anonymous users may read (the bootstrap signer adds a signature per token).
async fn publish_cluster_info(client: &kube::Client, server: &str, ca_pem: &str) -> Result<(), EnvError> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "", "cluster": {"server": server, "certificate-authority-data": BASE64.encode(ca_pem)}}],
        "contexts": [],
        "users": [],
    });
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cluster-info, namespace: kube-public}}
data:
  kubeconfig: {kubeconfig}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: "kubeadm:bootstrap-signer-clusterinfo", namespace: kube-public}}
rules: [{{apiGroups: [""], resources: [configmaps], resourceNames: [cluster-info], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: "kubeadm:bootstrap-signer-clusterinfo", namespace: kube-public}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: "kubeadm:bootstrap-signer-clusterinfo"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:anonymous"}}]
"#,
        kubeconfig =
            serde_json::to_string(&serde_json::to_string(&kubeconfig).expect("a kubeconfig")).expect("a string")
    );
    crate::apply::apply_manifests(client, &manifest).await.map(drop).map_err(|e| EnvError::Io {
        what: format!("publishing kube-public/cluster-info: {e}"),
        error: std::io::ErrorKind::Other.into(),
    })
}

async fn default_service_account_exists(client: &kube::Client) -> bool {
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(client.clone(), "default");
    matches!(accounts.get_opt("default").await, Ok(Some(_)))
}

fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<(), EnvError> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cairn-test", "cluster": {
            "server": server,
            "certificate-authority-data": BASE64.encode(&pki.ca_pem),
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": BASE64.encode(&pki.admin_cert_pem),
            "client-key-data": BASE64.encode(&pki.admin_key_pem),
        }}],
        "contexts": [{"name": "cairn-test", "context": {"cluster": "cairn-test", "user": "admin"}}],
        "current-context": "cairn-test",
    });
    let text = serde_json::to_vec_pretty(&config).expect("kubeconfig serializes");
    std::fs::write(path, text).map_err(|error| EnvError::Io { what: format!("writing {}", path.display()), error })
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("/dev/urandom is readable");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default state directory of a test process: in the temp dir, named after the process id, so stale
/// ones (whose process is gone) can be found and removed.
pub fn process_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cairn-testenv-{}", std::process::id()))
}

/// Removes the state directories of test processes that no longer run.
pub fn remove_stale_state_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix("cairn-testenv-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
