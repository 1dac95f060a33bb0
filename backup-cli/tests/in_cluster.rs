//! Cairn's server inside the cluster: `cairn install` (and once the Helm chart) with the server image built
//! from the binaries Cargo built, on the test environment's real node, the server using the installed
//! ServiceAccount through its in-cluster configuration; a backup and a restore run through it; and
//! `cairn install --wait` failing clearly when the server cannot start.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use cairn_tests::{NodeInfo, TestEnv, binaries::Binaries, node::REAL_NODE_TAINT, oci};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use support::{cairn, server_binary, succeeded};

/// The server image, as the node knows it after [`server_image`].
const SERVER_IMAGE: &str = "cairn.dev/test/cairn-server:dev";
/// An image whose program fails at once, printing why.
const CRASHING_IMAGE: &str = "cairn.dev/test/crashing:1";

/// The real node, with the server image and the crashing image imported (once per test process).
fn node(env: &TestEnv) -> NodeInfo {
    static IMPORTED: OnceLock<()> = OnceLock::new();
    let node = env.node();
    IMPORTED.get_or_init(|| {
        let work = env.info().state_dir.join("images");
        std::fs::create_dir_all(&work).unwrap();
        let server = oci::server_image(SERVER_IMAGE, &server_binary()).unwrap();
        oci::import(&server, &node.runtime_socket, &work).unwrap();
        let mut crashing = oci::shell_image();
        crashing.name = CRASHING_IMAGE.into();
        crashing.entrypoint = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo 'cannot start: /etc/cairn/settings is missing' >&2; exit 3".into(),
        ];
        oci::import(&crashing, &node.runtime_socket, &work).unwrap();
    });
    node
}

/// An AWS credentials file for the test S3 server, written under the environment's state directory.
fn credentials_file(env: &TestEnv, name: &str) -> PathBuf {
    let info = env.info();
    let path = info.state_dir.join(format!("{name}.credentials"));
    let text = format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
        info.s3_access_key_id, info.s3_secret_access_key
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The flags that put the server's pods on the real node.
fn on_the_node(node: &NodeInfo) -> Vec<String> {
    vec![
        "--tolerations".into(),
        format!("{REAL_NODE_TAINT}=real:NoSchedule"),
        "--node-selector".into(),
        format!("kubernetes.io/hostname={}", node.name),
    ]
}

/// The server's one pod in `namespace`, which must run on `node` from the server image, under the
/// installed ServiceAccount, with no kubeconfig: its configuration is the in-cluster one.
async fn assert_server_pod_on_the_node(env: &TestEnv, namespace: &str, node: &NodeInfo) {
    let pods: Api<Pod> = Api::namespaced(env.client().await, namespace);
    let listed = pods.list(&ListParams::default().labels("app.kubernetes.io/component=server")).await.unwrap();
    let running: Vec<&Pod> =
        listed.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).collect();
    let [pod] = running.as_slice() else { panic!("one running server pod expected: {:?}", listed.items) };
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node.name.as_str()));
    assert_eq!(spec.service_account_name.as_deref(), Some("cairn"));
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some(SERVER_IMAGE));
    assert!(container.env.iter().flatten().all(|e| e.name != "KUBECONFIG"), "{:?}", container.env);
}

/// Backs up `app` through the server in `namespace`, deletes a ConfigMap, restores it through the server, and
/// checks it is back.
async fn backup_and_restore_through_the_server(env: &TestEnv, namespace: &str, app: &str, name: &str) {
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client().await, app);
    let settings = ConfigMap {
        metadata: ObjectMeta { name: Some("settings".into()), ..Default::default() },
        data: Some([("mode".to_owned(), "in-cluster".to_owned())].into()),
        ..Default::default()
    };
    configmaps.create(&PostParams::default(), &settings).await.unwrap();
    let backup = succeeded(cairn(env, namespace, &["backup", "create", name, "--include-namespaces", app, "--wait"]));
    assert!(backup.contains("Completed"), "{backup}");
    let described = succeeded(cairn(env, namespace, &["backup", "describe", name, "--details"]));
    assert!(described.contains(&format!("{app}/settings")), "{described}");
    configmaps.delete("settings", &DeleteParams::default()).await.unwrap();
    let restored = succeeded(cairn(env, namespace, &["restore", "create", "--from-backup", name, "--wait"]));
    assert!(restored.contains("Completed"), "{restored}");
    let back = configmaps.get("settings").await.unwrap();
    assert_eq!(back.data.unwrap()["mode"], "in-cluster");
}

#[tokio::test]
async fn cairn_install_runs_the_server_on_the_real_node_and_a_backup_and_restore_go_through_it() {
    let env = TestEnv::get();
    let node = node(&env);
    let namespace = env.unique_name("in-cluster");
    let app = env.namespace("in-cluster-app").await;
    let info = env.info();
    let credentials = credentials_file(&env, &namespace);
    let config = format!("region={},s3Url={}", info.s3_region, info.s3_endpoint_for_pods(&node));
    let prefix = env.bucket_prefix("in-cluster");
    let mut args = vec![
        "install",
        "--image",
        SERVER_IMAGE,
        "--provider",
        "aws",
        "--bucket",
        &info.s3_bucket,
        "--prefix",
        &prefix,
        "--backup-location-config",
        &config,
        "--secret-file",
        credentials.to_str().unwrap(),
        "--backup-sync-period",
        "5s",
        "--wait",
    ];
    let placement = on_the_node(&node);
    args.extend(placement.iter().map(String::as_str));
    let installed = succeeded(cairn(&env, &namespace, &args));
    assert!(installed.contains(&format!("Cairn's server is running in namespace {namespace}")), "{installed}");
    assert_server_pod_on_the_node(&env, &namespace, &node).await;
    let version = succeeded(cairn(&env, &namespace, &["version", "-o", "json"]));
    assert!(version.contains(backup_core::VERSION), "the server answers: {version}");
    backup_and_restore_through_the_server(&env, &namespace, &app, "through-the-pod").await;
    // The backup is in the bucket the server wrote, under the prefix given to install.
    let store = info.open_bucket(&prefix).unwrap();
    let names = backup_core::backup::list_backup_names(&store).await.unwrap();
    assert!(names.iter().any(|n| n == "through-the-pod"), "{names:?}");
}

#[tokio::test]
async fn the_helm_chart_runs_the_server_on_the_real_node_and_a_backup_and_restore_go_through_it() {
    let env = TestEnv::get();
    let node = node(&env);
    let binaries = Binaries::ensure().unwrap();
    let namespace = env.namespace("helm").await;
    let app = env.namespace("helm-app").await;
    let info = env.info();
    let credentials = std::fs::read_to_string(credentials_file(&env, &namespace)).unwrap();
    let prefix = env.bucket_prefix("helm");
    let (repository, tag) = SERVER_IMAGE.rsplit_once(':').unwrap();
    let values = serde_json::json!({
        "image": {"repository": repository, "tag": tag},
        "nodeSelector": {"kubernetes.io/hostname": node.name},
        "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
        "server": {"backupSyncPeriod": "5s"},
        "defaultBackupStorageLocation": {
            "provider": "aws",
            "bucket": info.s3_bucket,
            "prefix": prefix,
            "config": {"region": info.s3_region, "s3Url": info.s3_endpoint_for_pods(&node)},
        },
        "credentials": {"secretContents": credentials},
    });
    let values_file = info.state_dir.join(format!("{namespace}.values.json"));
    std::fs::write(&values_file, values.to_string()).unwrap();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/cairn");
    let helm = Command::new(&binaries.helm)
        .args(["install", "cairn"])
        .arg(&chart)
        .args(["--namespace", &namespace, "--values"])
        .arg(&values_file)
        .args(["--wait", "--timeout", "3m"])
        .env("KUBECONFIG", &info.kubeconfig)
        .env("HELM_CACHE_HOME", info.state_dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", info.state_dir.join("helm/config"))
        .env("HELM_DATA_HOME", info.state_dir.join("helm/data"))
        .output()
        .unwrap();
    succeeded(helm);
    assert_server_pod_on_the_node(&env, &namespace, &node).await;
    backup_and_restore_through_the_server(&env, &namespace, &app, "through-the-chart").await;
}

/// `cairn install --wait` in a fresh namespace with `image`, expected to fail: its stderr.
fn failed_install(env: &TestEnv, node: &NodeInfo, base: &str, image: &str) -> String {
    let namespace = env.unique_name(base);
    let mut args = vec!["install", "--image", image, "--no-default-backup-location", "--wait"];
    let placement = on_the_node(node);
    args.extend(placement.iter().map(String::as_str));
    let started = std::time::Instant::now();
    let output = cairn(env, &namespace, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "install --wait succeeded with {image}: {stderr}");
    // It fails as soon as the pod backs off, well before the 5 minutes it would wait otherwise.
    assert!(started.elapsed() < Duration::from_secs(240), "{stderr}");
    assert!(stderr.contains(&format!("the server's pod {namespace}/cairn-")), "{stderr}");
    assert!(stderr.contains("run `cairn install` again"), "{stderr}");
    stderr
}

#[tokio::test]
async fn install_wait_names_an_image_that_cannot_be_pulled() {
    let env = TestEnv::get();
    let node = node(&env);
    // No registry listens on port 1 of the loopback interface: the pull fails at once, and nothing leaves
    // the machine.
    let stderr = failed_install(&env, &node, "wrong-image", "127.0.0.1:1/cairn/missing:none");
    assert!(stderr.contains("ImagePullBackOff") || stderr.contains("ErrImagePull"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1/cairn/missing:none"), "{stderr}");
}

#[tokio::test]
async fn install_wait_shows_a_crash_loop_with_the_last_log_lines() {
    let env = TestEnv::get();
    let node = node(&env);
    let stderr = failed_install(&env, &node, "crashing", CRASHING_IMAGE);
    assert!(stderr.contains("CrashLoopBackOff"), "{stderr}");
    assert!(stderr.contains("its last log lines:\n  cannot start: /etc/cairn/settings is missing"), "{stderr}");
    // The namespace stays, with what was applied, for the user to inspect.
    let namespaces: Api<Namespace> = Api::all(env.client().await);
    assert!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|n| { n.metadata.name.as_deref().is_some_and(|name| name.starts_with("crashing")) })
    );
}
