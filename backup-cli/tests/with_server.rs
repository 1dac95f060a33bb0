//! The `cairn` binary against a running `backup-server` (the one Cargo built beside it), the real control
//! plane and S3 server: what a person does once a server is installed.

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

use cairn_tests::{
    TestEnv,
    apply::{SAMPLE_WORKLOADS, apply_manifests},
    server::{ServerProcess, install_crds},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use serde_json::Value;

/// `backup-server`, built into the same directory as `cairn` by `cargo test --workspace` or `cargo build`.
fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_cairn")).with_file_name("backup-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p backup-server` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

fn cairn(env: &TestEnv, namespace: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .args(["--namespace", namespace])
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_STORAGE")
        .env_remove("CAIRN_NAMESPACE")
        .output()
        .expect("cairn runs")
}

fn ok(output: Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    stdout.into_owned()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..150 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn with_a_server_the_cli_backs_up_restores_schedules_and_deletes_through_objects() {
    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let namespace = env.namespace("cli-srv").await;
    let workload = env.namespace("cli-srv-app").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &workload)).await.unwrap();

    // The location, as a person would add it: a Secret with an AWS credentials file, then the location.
    let info = env.info();
    let credentials = format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
        info.s3_access_key_id, info.s3_secret_access_key
    );
    let secret = Secret {
        metadata: ObjectMeta { name: Some("s3".into()), ..Default::default() },
        string_data: Some([("cloud".to_owned(), credentials)].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &secret).await.unwrap();
    let prefix = env.bucket_prefix("cli-srv");
    let config = format!("s3Url={},region={}", info.s3_endpoint, info.s3_region);
    ok(cairn(
        &env,
        &namespace,
        &[
            "backup-location",
            "create",
            "main",
            "--provider",
            "aws",
            "--bucket",
            &info.s3_bucket,
            "--prefix",
            &prefix,
            "--config",
            &config,
            "--credential",
            "s3=cloud",
            "--default",
        ],
    ));
    let server = ServerProcess::start(
        &server_binary(),
        &env,
        &namespace,
        "cli",
        &["--backup-sync-period", "1s", "--store-validation-frequency", "1s"],
    )
    .unwrap();

    let version = ok(cairn(&env, &namespace, &["version", "-o", "json"]));
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["server"]["version"], backup_core::VERSION, "{version}");

    let created = cairn(&env, &namespace, &["backup", "create", "first", "--include-namespaces", &workload, "--wait"]);
    ok(created);
    let table = ok(cairn(&env, &namespace, &["backup", "get"]));
    assert!(table.starts_with("NAME") && table.contains("first") && table.contains("Completed"), "{table}");
    let logs = ok(cairn(&env, &namespace, &["backup", "logs", "first"]));
    assert!(logs.contains("backup first"), "{logs}\n{}", server.tail());
    let details = ok(cairn(&env, &namespace, &["backup", "describe", "first", "--details"]));
    assert!(details.contains(&format!("{workload}/shop-config")), "{details}");

    let target = env.unique_name("cli-srv-copy");
    let mapping = format!("{workload}:{target}");
    ok(cairn(
        &env,
        &namespace,
        &["restore", "create", "copy", "--from-backup", "first", "--namespace-mappings", &mapping, "--wait"],
    ));
    let copied: Api<ConfigMap> = Api::namespaced(client.clone(), &target);
    assert!(copied.get_opt("shop-config").await.unwrap().is_some());
    let restores = ok(cairn(&env, &namespace, &["restore", "get"]));
    assert!(restores.contains("copy") && restores.contains("Completed"), "{restores}");

    ok(cairn(
        &env,
        &namespace,
        &["schedule", "create", "often", "--schedule", "@every 5s", "--include-namespaces", &workload],
    ));
    eventually("a scheduled backup", || {
        let listed = ok(cairn(&env, &namespace, &["backup", "get", "-o", "json"]));
        listed.contains("\"often-")
    })
    .await;
    ok(cairn(&env, &namespace, &["schedule", "pause", "often"]));
    let schedules = ok(cairn(&env, &namespace, &["schedule", "get"]));
    assert!(schedules.contains("often") && schedules.contains("@every 5s"), "{schedules}");

    ok(cairn(&env, &namespace, &["backup", "delete", "first", "--confirm"]));
    eventually("the deleted backup to leave the list", || {
        !ok(cairn(&env, &namespace, &["backup", "get"])).contains("first ")
    })
    .await;
    let gone = env.s3_store(&prefix);
    assert!(backup_core::backup::read_backup(&gone, "first").await.unwrap().is_none(), "{}", server.tail());
    // The restore made from it went with it: object and stored files.
    let restores: Api<backup_core::api::Restore> = Api::namespaced(client.clone(), &namespace);
    assert!(restores.get_opt("copy").await.unwrap().is_none(), "{}", server.tail());
    assert!(backup_core::restore::find_restore(&gone, "copy").await.is_err());
}
