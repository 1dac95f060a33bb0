//! Restore hooks against the real node: an init hook (annotation) put before a restored pod's containers runs
//! first (its output, and its end before the app's start), an exec hook runs in the restored pod once it
//! is Ready and the restore reports it; failing, timed-out and never-started exec hooks make the restore
//! PartiallyFailed naming each hook; Velero's annotations work the same.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::{process::Output, time::Duration};

use cairn_tests::{TestEnv, apply::apply_manifests, node::REAL_NODE_TAINT, oci::SHELL_IMAGE};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::LogParams};
use serde_json::{Value, json};
use support::nodes::{eventually, running};

fn cairn(env: &TestEnv, storage: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.args(args).args(["--storage", storage]).env("KUBECONFIG", &env.info().kubeconfig);
    command.output().expect("cairn runs")
}

/// A pod `name` in group `group` on the real node: its app container sleeps.
fn pod(env: &TestEnv, namespace: &str, name: &str, group: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations, "labels": {"group": group}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": env.node().name},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": SHELL_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}})
}

fn restore(env: &TestEnv, storage: &str, name: &str, args: &[&str]) -> Value {
    let mut all = vec!["restore", "create", name, "--from-backup", "hooked"];
    all.extend(args);
    let created = cairn(env, storage, &all);
    let described = cairn(env, storage, &["restore", "describe", name, "--details", "-o", "json"]);
    assert!(
        described.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&created.stderr),
        String::from_utf8_lossy(&described.stderr)
    );
    serde_json::from_slice(&described.stdout).unwrap()
}

fn hook_of<'a>(described: &'a Value, pod: &str) -> &'a Value {
    described["results"]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pod"] == pod)
        .unwrap_or_else(|| panic!("no hook of {pod}: {described}"))
}

#[tokio::test]
async fn init_hooks_run_before_the_app_and_exec_hooks_after_it_is_ready_and_failures_are_named() {
    let env = TestEnv::get();
    let client = env.client().await;
    let source = env.namespace("rhooks").await;
    let good = env.namespace("rhooks-good").await;
    let bad = env.namespace("rhooks-bad").await;
    let storage = format!("file://{}", env.info().state_dir.join(format!("rhooks-{source}")).display());
    let slow_marker = format!("43{}", std::process::id());
    let app = pod(
        &env,
        &source,
        "app",
        "good",
        json!({
            "init.hook.restore.cairn.dev/container-image": SHELL_IMAGE,
            "init.hook.restore.cairn.dev/container-name": "restore-data",
            "init.hook.restore.cairn.dev/command": json!(["/bin/sh", "-c", "echo restored-by-init"]).to_string(),
            "post.hook.restore.velero.io/command": json!(["/bin/sh", "-c", "echo exec-ran"]).to_string(),
            "post.hook.restore.velero.io/wait-for-ready": "true",
        }),
    );
    let failing = pod(
        &env,
        &source,
        "failing",
        "bad",
        json!({
            "post.hook.restore.cairn.dev/command": json!(["/bin/sh", "-c", "echo nope; exit 4"]).to_string(),
        }),
    );
    let slow = pod(
        &env,
        &source,
        "slow",
        "bad",
        json!({
            "post.hook.restore.cairn.dev/command": json!(["/bin/sleep", slow_marker]).to_string(),
            "post.hook.restore.cairn.dev/exec-timeout": "2s",
        }),
    );
    let mut stuck = pod(
        &env,
        &source,
        "stuck",
        "bad",
        json!({
            "post.hook.restore.cairn.dev/command": "/bin/true",
            "post.hook.restore.cairn.dev/wait-timeout": "3s",
        }),
    );
    stuck["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "no-such-node"});
    let yaml: String =
        [app, failing, slow, stuck].iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(&client, &yaml).await.unwrap();
    eventually(Duration::from_secs(90), "three pods running", || {
        let (client, source) = (client.clone(), source.clone());
        async move { (running(&client, &source, "").await.len() == 3).then_some(()) }
    })
    .await;
    let backed_up = cairn(&env, &storage, &["backup", "create", "hooked", "--include-namespaces", &source]);
    assert!(backed_up.status.success(), "{}", String::from_utf8_lossy(&backed_up.stderr));

    let mapping = format!("{source}:{good}");
    let described = restore(&env, &storage, "good", &["--namespace-mappings", &mapping, "--selector", "group=good"]);
    assert_eq!(described["restore"]["status"]["phase"], "Completed", "{described}");
    let exec = hook_of(&described, "app");
    assert_eq!((exec["outcome"].as_str(), exec["exitCode"].as_i64()), (Some("Succeeded"), Some(0)), "{exec}");
    assert_eq!(exec["output"], json!(["exec-ran"]), "{exec}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &good);
    let restored = pods.get("app").await.unwrap();
    let init: Vec<String> = restored.spec.unwrap().init_containers.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(init, ["restore-data"]);
    // The init container ran (its output) and ended before the app container started.
    let log =
        pods.logs("app", &LogParams { container: Some("restore-data".into()), ..Default::default() }).await.unwrap();
    assert!(log.contains("restored-by-init"), "{log}");
    let status = pods.get("app").await.unwrap().status.unwrap();
    let init_finished =
        status.init_container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap().finished_at.unwrap();
    let app_started = status.container_statuses.unwrap()[0].state.clone().unwrap().running.unwrap().started_at.unwrap();
    assert!(
        init_finished.0 <= app_started.0,
        "the init hook ended at {init_finished:?}, after the app started at {app_started:?}"
    );

    let mapping = format!("{source}:{bad}");
    let described = restore(&env, &storage, "bad", &["--namespace-mappings", &mapping, "--selector", "group=bad"]);
    assert_eq!(described["restore"]["status"]["phase"], "PartiallyFailed", "{described}");
    let failed = hook_of(&described, "failing");
    assert_eq!((failed["outcome"].as_str(), failed["exitCode"].as_i64()), (Some("Failed"), Some(4)), "{failed}");
    let errors = described["results"]["errors"].to_string();
    assert!(errors.contains("exec restore hook (annotation post.hook.restore.cairn.dev) in container \\\"app\\\" failed: exited with 4; last output: nope"), "{errors}");
    assert!(errors.contains("timed out after 2s; it was killed in the container"), "{errors}");
    assert!(errors.contains("waited 3s (wait-timeout): container app is not running"), "{errors}");
    let text = String::from_utf8_lossy(&cairn(&env, &storage, &["restore", "describe", "bad", "--details"]).stdout)
        .into_owned();
    assert!(text.contains("Hooks:") && text.contains("| nope"), "{text}");
}

#[tokio::test]
async fn a_restore_objects_spec_hooks_and_resource_modifier_apply_through_the_server() {
    use cairn_api::{AccessMode, Restore, RestoreSpec};
    use cairn_tests::server::{ServerProcess, create_s3_location, install_crds};

    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let server_namespace = env.namespace("rhooks-server").await;
    let source = env.namespace("rhooks-spec").await;
    let target = env.namespace("rhooks-spec-back").await;
    create_s3_location(&client, &env, &server_namespace, "default", &env.unique_name("rhooks"), AccessMode::ReadWrite)
        .await;
    let _server = ServerProcess::start(
        &support::server_binary(),
        &env,
        &server_namespace,
        "rhooks",
        &["--leader-elect", "false"],
    )
    .expect("the server starts");
    let rules = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: add, path: /metadata/annotations, value: '{\"restored-by\": \"cairn\"}'}\n";
    let objects = [
        pod(&env, &source, "web", "spec", json!({})),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mods", "namespace": server_namespace}, "data": {"rules.yaml": rules}}),
    ];
    let yaml: String = objects.iter().map(|o| format!("---\n{}", serde_yaml_ng::to_string(o).unwrap())).collect();
    apply_manifests(&client, &yaml).await.unwrap();
    eventually(Duration::from_secs(90), "the pod running", || {
        let (client, source) = (client.clone(), source.clone());
        async move { (running(&client, &source, "").await.len() == 1).then_some(()) }
    })
    .await;
    let backed_up = support::cairn(
        &env,
        &server_namespace,
        &["backup", "create", "spec-hooked", "--include-namespaces", &source, "--wait"],
    );
    assert!(backed_up.status.success(), "{}", String::from_utf8_lossy(&backed_up.stderr));

    let spec: RestoreSpec = serde_json::from_value(json!({
        "backupName": "spec-hooked",
        "namespaceMapping": {source.clone(): target.clone()},
        "resourceModifier": {"kind": "ConfigMap", "name": "mods"},
        "hooks": {"resources": [{"name": "prepare", "includedNamespaces": [source], "labelSelector": {"matchLabels": {"group": "spec"}},
            "postHooks": [
                {"init": {"initContainers": [{"name": "seed", "image": SHELL_IMAGE, "imagePullPolicy": "Never", "command": ["/bin/sh", "-c", "echo seeded"]}]}},
                {"exec": {"command": ["/bin/sh", "-c", "echo checked"], "waitForReady": true, "onError": "Fail"}}
            ]}]}
    }))
    .unwrap();
    let restores: Api<Restore> = Api::namespaced(client.clone(), &server_namespace);
    restores.create(&Default::default(), &Restore::new("spec-hooked-back", spec)).await.unwrap();
    let done = eventually(Duration::from_secs(180), "the restore finished", || {
        let restores = restores.clone();
        async move {
            let restore = restores.get("spec-hooked-back").await.ok()?;
            let phase = restore.status.as_ref()?.phase?;
            (!matches!(phase, cairn_api::RestoreObjectPhase::New | cairn_api::RestoreObjectPhase::InProgress))
                .then_some(restore)
        }
    })
    .await;
    assert_eq!(done.status.as_ref().and_then(|s| s.phase), Some(cairn_api::RestoreObjectPhase::Completed), "{done:?}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &target);
    let restored = pods.get("web").await.unwrap();
    assert_eq!(restored.metadata.annotations.unwrap_or_default().get("restored-by").map(String::as_str), Some("cairn"));
    let init: Vec<String> = restored.spec.unwrap().init_containers.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(init, ["seed"]);
    let described = support::cairn(
        &env,
        &server_namespace,
        &["restore", "describe", "spec-hooked-back", "--details", "-o", "json"],
    );
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    let exec = hook_of(&described, "web");
    assert_eq!(
        (exec["source"].as_str(), exec["outcome"].as_str()),
        (Some("spec entry prepare"), Some("Succeeded")),
        "{exec}"
    );
    assert_eq!(exec["output"], json!(["checked"]), "{exec}");
}
