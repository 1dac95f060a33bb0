//! Backup hooks against the real node: pods annotated (Cairn's domain and Velero's) run their pre hooks
//! before the backup reads anything, so a ConfigMap a pre hook creates through the API server is in the
//! backup while the one a post hook creates is not; a failing pre hook with `Fail` leaves its pod out and makes
//! the backup PartiallyFailed, with `Continue` only warns; a hook past its timeout is killed in the container;
//! a pod that is not running has its hooks skipped with a warning.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::{process::Output, time::Duration};

use cairn_tests::{TestEnv, apply::apply_manifests, node::REAL_NODE_TAINT, oci::SHELL_IMAGE};
use kube::Api;
use serde_json::{Value, json};
use support::nodes::{eventually, running};

fn cairn(env: &TestEnv, storage: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.args(args).args(["--storage", storage]).env("KUBECONFIG", &env.info().kubeconfig);
    command.output().expect("cairn runs")
}

/// A hook command that signals `step` to the test through the shared directory and waits for its answer:
/// the test then creates the ConfigMap `<step>-marker`, standing for what an application's hook writes (a
/// dump), and answers. (Busybox's TLS cannot reach the API server from the pod.)
fn signal(step: &str) -> Value {
    json!([
        "/bin/sh",
        "-c",
        format!("/bin/busybox touch /markers/{step} && while [ ! -e /markers/{step}.done ]; do sleep 0.1; done")
    ])
}

/// Answers the hooks' signals in `dir`: for each `<step>` file, creates the ConfigMap `<step>-marker`, then
/// writes `<step>.done`.
fn answer_signals(client: kube::Client, namespace: String, dir: std::path::PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, &namespace);
        loop {
            for step in ["pre", "post", "never"] {
                if dir.join(step).exists() && !dir.join(format!("{step}.done")).exists() {
                    let map = serde_json::from_value(
                        json!({"metadata": {"name": format!("{step}-marker")}, "data": {"by": "hook"}}),
                    )
                    .unwrap();
                    maps.create(&Default::default(), &map).await.unwrap();
                    std::fs::write(dir.join(format!("{step}.done")), b"").unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// A pod `name` on the real node running `sleep seconds`, with `annotations`.
fn pod(env: &TestEnv, namespace: &str, name: &str, seconds: &str, annotations: Value) -> Value {
    let node = env.node();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "annotations": annotations, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node.name},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": SHELL_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", seconds]}]}})
}

fn yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect()
}

fn describe(env: &TestEnv, storage: &str, name: &str) -> Value {
    let described = cairn(env, storage, &["backup", "describe", name, "--details", "-o", "json"]);
    assert!(described.status.success(), "{}", String::from_utf8_lossy(&described.stderr));
    serde_json::from_slice(&described.stdout).unwrap()
}

fn listed(description: &Value, kind: &str) -> Vec<String> {
    description["resourceList"][kind]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn sleeping(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_around_the_backup_and_their_failures_are_reported_as_they_ask() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("hooks").await;
    let storage = format!("file://{}", env.info().state_dir.join(format!("hooks-{namespace}")).display());
    let timed_out_marker = format!("41{}", std::process::id());
    let markers = env.info().state_dir.join(format!("hooks-markers-{namespace}"));
    std::fs::create_dir_all(&markers).unwrap();
    let answering = answer_signals(client.clone(), namespace.clone(), markers.clone());
    let with_markers = |mut pod: Value| {
        let path = markers.display().to_string();
        pod["spec"]["volumes"] = json!([{"name": "markers", "hostPath": {"path": path, "type": "Directory"}}]);
        pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "markers", "mountPath": "/markers"}]);
        pod
    };
    let pods = [
        with_markers(pod(
            &env,
            &namespace,
            "db",
            "3600",
            json!({
                "pre.hook.backup.cairn.dev/command": signal("pre").to_string(),
                "post.hook.backup.cairn.dev/command": signal("post").to_string(),
            }),
        )),
        with_markers(pod(
            &env,
            &namespace,
            "broken",
            "3600",
            json!({
                "pre.hook.backup.cairn.dev/command": json!(["/bin/sh", "-c", "echo dump failed; exit 3"]).to_string(),
                "post.hook.backup.cairn.dev/command": signal("never").to_string(),
            }),
        )),
        pod(
            &env,
            &namespace,
            "tolerated",
            "3600",
            json!({
                "pre.hook.backup.velero.io/command": json!(["/bin/sh", "-c", "echo not fatal >&2; exit 1"]).to_string(),
                "pre.hook.backup.velero.io/on-error": "Continue",
            }),
        ),
        pod(
            &env,
            &namespace,
            "slow",
            "3600",
            json!({
                "pre.hook.backup.velero.io/command": json!(["/bin/sleep", timed_out_marker]).to_string(),
                "pre.hook.backup.velero.io/timeout": "3s",
                "pre.hook.backup.velero.io/on-error": "Continue",
            }),
        ),
    ];
    let mut pending =
        pod(&env, &namespace, "pending", "3600", json!({"pre.hook.backup.cairn.dev/command": "/bin/true"}));
    pending["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "no-such-node"});
    let mut all = pods.to_vec();
    all.push(pending);
    apply_manifests(&client, &yaml(&all)).await.unwrap();
    eventually(Duration::from_secs(90), "four pods running", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "").await.len() == 4).then_some(()) }
    })
    .await;

    let created = cairn(&env, &storage, &["backup", "create", "with-hooks", "--include-namespaces", &namespace]);
    answering.abort();
    answering.abort();
    let stderr = String::from_utf8_lossy(&created.stderr);
    let described = describe(&env, &storage, "with-hooks");
    assert_eq!(described["backup"]["status"]["phase"], "PartiallyFailed", "{stderr}\n{described}");

    // The pre hook's ConfigMap is in the backup; the post hook's exists, made after the backup read the cluster.
    let config_maps = listed(&described, "v1/ConfigMap");
    assert!(config_maps.contains(&format!("{namespace}/pre-marker")), "{config_maps:?}");
    assert!(!config_maps.contains(&format!("{namespace}/post-marker")), "{config_maps:?}");
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &namespace);
    assert!(maps.get_opt("post-marker").await.unwrap().is_some(), "the post hook did not run");
    assert!(maps.get_opt("never-marker").await.unwrap().is_none(), "a failed pod's post hook ran");

    // The failing pod is left out with its output named; the tolerated one is in, with a warning.
    let pods = listed(&described, "v1/Pod");
    assert!(
        !pods.contains(&format!("{namespace}/broken")) && pods.contains(&format!("{namespace}/tolerated")),
        "{pods:?}"
    );
    let errors = described["results"]["errors"].to_string();
    assert!(
        errors.contains("exited with 3; last output: dump failed") && errors.contains("left out of the backup"),
        "{errors}"
    );
    let warnings = described["results"]["warnings"].to_string();
    assert!(warnings.contains("exited with 1; last output: not fatal (onError: Continue)"), "{warnings}");
    assert!(warnings.contains("the pod is not running (Pending): its pre hooks were skipped"), "{warnings}");
    assert!(warnings.contains("timed out after 3s; it was killed in the container"), "{warnings}");
    assert_eq!(sleeping(&timed_out_marker), 0, "the timed-out hook still runs");

    let hooks = described["results"]["hooks"].as_array().unwrap();
    let db_pre = hooks.iter().find(|h| h["pod"] == "db" && h["phase"] == "pre").unwrap();
    assert_eq!((db_pre["outcome"].as_str(), db_pre["exitCode"].as_i64()), (Some("Succeeded"), Some(0)), "{db_pre}");
    let text =
        String::from_utf8_lossy(&cairn(&env, &storage, &["backup", "describe", "with-hooks", "--details"]).stdout)
            .into_owned();
    assert!(
        text.contains("Hooks:") && text.contains(&format!("pre {namespace}/broken [app] Failed, exit 3")),
        "{text}"
    );
    assert!(text.contains("    | dump failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_objects_spec_hooks_run_in_the_pods_they_select_through_the_server() {
    use cairn_api::{AccessMode, Backup, BackupHooks, BackupResourceHookSpec, BackupSpec, SelectionSpec};
    use cairn_tests::server::{ServerProcess, create_s3_location, install_crds};

    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let server_namespace = env.namespace("hooks-server").await;
    let namespace = env.namespace("hooks-app").await;
    create_s3_location(&client, &env, &server_namespace, "default", &env.unique_name("hooks"), AccessMode::ReadWrite)
        .await;
    let _server =
        ServerProcess::start(&support::server_binary(), &env, &server_namespace, "hooks", &["--leader-elect", "false"])
            .expect("the server starts");
    let markers = env.info().state_dir.join(format!("hooks-markers-{namespace}"));
    std::fs::create_dir_all(&markers).unwrap();
    let answering = answer_signals(client.clone(), namespace.clone(), markers.clone());
    let mut selected = pod(&env, &namespace, "db", "3600", json!({}));
    selected["spec"]["volumes"] =
        json!([{"name": "markers", "hostPath": {"path": markers.display().to_string(), "type": "Directory"}}]);
    selected["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "markers", "mountPath": "/markers"}]);
    let other = pod(&env, &namespace, "web", "3600", json!({}));
    apply_manifests(&client, &yaml(&[selected, other])).await.unwrap();
    eventually(Duration::from_secs(90), "both pods running", || {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move { (running(&client, &namespace, "").await.len() == 2).then_some(()) }
    })
    .await;

    let hook = |step: &str| {
        serde_json::from_value::<cairn_api::BackupHook>(json!({"exec": {"command": signal(step), "timeout": "1m"}}))
            .unwrap()
    };
    let spec = BackupSpec {
        selection: SelectionSpec { included_namespaces: vec![namespace.clone()], ..Default::default() },
        hooks: BackupHooks {
            resources: vec![BackupResourceHookSpec {
                name: "dump".into(),
                selection: cairn_api::HookSelection {
                    included_namespaces: vec![namespace.clone()],
                    label_selector: Some(serde_json::from_value(json!({"matchLabels": {"app": "db"}})).unwrap()),
                    ..Default::default()
                },
                pre: vec![hook("pre")],
                post: vec![hook("post")],
            }],
        },
        ..Default::default()
    };
    let backups: Api<Backup> = Api::namespaced(client.clone(), &server_namespace);
    backups.create(&Default::default(), &Backup::new("spec-hooks", spec)).await.unwrap();
    let done = eventually(Duration::from_secs(120), "the backup finished", || {
        let backups = backups.clone();
        async move { backups.get("spec-hooks").await.ok().filter(|b| !b.phase().is_active()) }
    })
    .await;
    answering.abort();
    assert_eq!(done.phase(), cairn_api::BackupPhase::Completed, "{done:?}");

    let described =
        support::cairn(&env, &server_namespace, &["backup", "describe", "spec-hooks", "--details", "-o", "json"]);
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    let hooks = described["results"]["hooks"].as_array().unwrap();
    let ran: Vec<(&str, &str, &str, &str)> = hooks
        .iter()
        .map(|h| {
            (
                h["phase"].as_str().unwrap(),
                h["pod"].as_str().unwrap(),
                h["source"].as_str().unwrap(),
                h["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ran, [("pre", "db", "spec entry dump", "Succeeded"), ("post", "db", "spec entry dump", "Succeeded")]);
    let config_maps = listed(&described, "v1/ConfigMap");
    assert!(config_maps.contains(&format!("{namespace}/pre-marker")), "{config_maps:?}");
    assert!(!config_maps.contains(&format!("{namespace}/post-marker")), "{config_maps:?}");
}
