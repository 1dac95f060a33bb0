//! Running `backup-server` against the test environment: the CRDs installed, a storage location in the
//! environment's bucket with its credentials Secret, and the server process itself (its log kept, killed
//! with the test).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cairn_api::{AccessMode, BackupStorageLocation, BackupStorageLocationSpec, ObjectStorage, SecretKeySelector, crds};
use k8s_openapi::{
    api::core::v1::Secret, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};

use crate::{
    EnvError, TestEnv,
    process::{Component, accepts_connections, free_port, log_tail},
};

/// Applies every `cairn.dev` CRD (server-side, so repeating it is harmless) and waits until each is
/// Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("cairn-tests").force();
    for crd in crds() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd)).await.unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        for attempt in 0.. {
            let current = api.get(&name).await.unwrap_or_else(|e| panic!("reading CRD {name}: {e}"));
            let established = current
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            assert!(attempt < 100, "CRD {name} was not Established within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Established comes a moment before the API server serves the type ("storage is (re)initializing").
        let url = format!("/apis/{}/{}/{}?limit=1", crd.spec.group, crd.spec.versions[0].name, crd.spec.names.plural);
        for attempt in 0.. {
            if cairn_kube::client::get_text(client, &url).await.is_ok() {
                break;
            }
            assert!(attempt < 100, "{url} was not served within 10 s of CRD {name} being Established");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Creates, in `namespace`, a Secret with the environment's S3 keys and a BackupStorageLocation `name` in the
/// environment's bucket under `prefix`.
pub async fn create_s3_location(
    client: &Client,
    env: &TestEnv,
    namespace: &str,
    name: &str,
    prefix: &str,
    mode: AccessMode,
) {
    create_s3_location_at(client, env, namespace, name, prefix, mode, &env.info().s3_endpoint).await
}

/// [`create_s3_location`] reaching the S3 server at `endpoint` (a proxy in front of it).
pub async fn create_s3_location_at(
    client: &Client,
    env: &TestEnv,
    namespace: &str,
    name: &str,
    prefix: &str,
    mode: AccessMode,
    endpoint: &str,
) {
    let info = env.info();
    let secret_name = format!("{name}-credentials");
    let credentials = format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        info.s3_access_key_id, info.s3_secret_access_key
    );
    let secret = Secret {
        metadata: ObjectMeta { name: Some(secret_name.clone()), ..Default::default() },
        string_data: Some([("cloud".to_owned(), credentials)].into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating secret {secret_name}: {e}"),
    }
    let location = BackupStorageLocation::new(
        name,
        BackupStorageLocationSpec {
            provider: "aws".into(),
            object_storage: ObjectStorage {
                bucket: info.s3_bucket.clone(),
                prefix: Some(prefix.into()),
                ca_cert: None,
            },
            config: [("s3Url".to_owned(), endpoint.to_owned()), ("region".to_owned(), info.s3_region.clone())].into(),
            credential: Some(SecretKeySelector { name: secret_name, key: "cloud".into() }),
            default: true,
            access_mode: mode,
            ..Default::default()
        },
    );
    Api::<BackupStorageLocation>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &location)
        .await
        .unwrap_or_else(|e| panic!("creating backup storage location {name}: {e}"));
}

/// A kubeconfig in the environment's state directory that authenticates as ServiceAccount `account` of
/// `namespace` (a one-hour token from the TokenRequest API): what the server can do with it is exactly
/// what RBAC grants that account.
pub async fn service_account_kubeconfig(env: &TestEnv, client: &Client, namespace: &str, account: &str) -> PathBuf {
    use k8s_openapi::api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::ServiceAccount,
    };
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("requesting a token for {namespace}/{account}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("a token request is answered with a token");
    let admin = kube::config::Kubeconfig::read_from(&env.info().kubeconfig).expect("the admin kubeconfig reads");
    let authority = admin.clusters[0].cluster.as_ref().and_then(|c| c.certificate_authority_data.clone()).expect("CA");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {authority}\n\
         users:\n- name: {account}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {account}\n\
         current-context: test\n",
        env.info().apiserver_url
    );
    let path = env.info().state_dir.join(format!("kubeconfig-{namespace}-{account}"));
    std::fs::write(&path, text).expect("the kubeconfig is written");
    path
}

/// A running `backup-server`. Killed (SIGKILL) when dropped or when the thread that started it ends.
#[derive(Debug)]
pub struct ServerProcess {
    component: Option<Component>,
    log: PathBuf,
    /// The port of /metrics, /healthz and /readyz.
    pub port: u16,
    /// Its identity in the Lease.
    pub identity: String,
}

impl ServerProcess {
    /// Starts `binary` (the `backup-server` Cargo built) for `namespace` with the environment's kubeconfig,
    /// named `identity`, with `extra` flags; waits until its HTTP port answers.
    pub fn start(
        binary: &Path,
        env: &TestEnv,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Result<Self, EnvError> {
        Self::start_as(binary, env, &env.info().kubeconfig, namespace, identity, extra)
    }

    /// [`ServerProcess::start`] with another kubeconfig (another identity, other permissions).
    pub fn start_as(
        binary: &Path,
        env: &TestEnv,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Result<Self, EnvError> {
        let port = free_port()?;
        let log = env.info().state_dir.join("logs").join(format!("backup-server-{namespace}-{identity}.log"));
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--namespace".into(),
            namespace.into(),
            "--metrics-address".into(),
            format!("127.0.0.1:{port}"),
            "--identity".into(),
            identity.into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut component = Component::start("backup-server", binary, &args, log.clone(), vec![port])?;
        component.wait_until(Duration::from_secs(30), || accepts_connections(port))?;
        Ok(ServerProcess { component: Some(component), log, port, identity: identity.into() })
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.component.as_ref().map(Component::pid)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's last lines, for assertion messages.
    pub fn tail(&self) -> String {
        log_tail(&self.log, 30)
    }

    /// `GET path` on the server's HTTP port: the status code and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the server's port answers");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (code, body)
    }

    /// Kills the server at once (SIGKILL): no cleanup, as when a node dies.
    pub fn kill(&mut self) {
        drop(self.component.take());
    }
}
