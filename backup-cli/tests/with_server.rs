//! The `cairn` binary against a running `backup-server` (the one Cargo built beside it), the real control
//! plane and S3 server: what a person does once a server is installed.

use std::{process::Output, time::Duration};

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

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
use support::{cairn, cairn_command, server_binary, succeeded};

/// `cairn` run in the directory `dir` (where `backup download` writes).
fn cairn_in(env: &TestEnv, namespace: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    cairn_command(env, namespace, args).current_dir(dir).output().expect("cairn runs")
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
    succeeded(cairn(
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

    let version = succeeded(cairn(&env, &namespace, &["version", "-o", "json"]));
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["server"]["version"], backup_core::VERSION, "{version}");

    let created = cairn(&env, &namespace, &["backup", "create", "first", "--include-namespaces", &workload, "--wait"]);
    succeeded(created);
    let table = succeeded(cairn(&env, &namespace, &["backup", "get"]));
    assert!(table.starts_with("NAME") && table.contains("first") && table.contains("Completed"), "{table}");
    let logs = succeeded(cairn(&env, &namespace, &["backup", "logs", "first"]));
    assert!(logs.contains("backup first"), "{logs}\n{}", server.tail());
    let details = succeeded(cairn(&env, &namespace, &["backup", "describe", "first", "--details"]));
    assert!(details.contains(&format!("{workload}/shop-config")), "{details}");
    let dir = info.state_dir.join(env.unique_name("cli-srv-download"));
    std::fs::create_dir_all(&dir).unwrap();
    let downloaded = succeeded(cairn_in(&env, &namespace, &dir, &["backup", "download", "first"]));
    let archive = std::fs::read(dir.join("first-data.tar.zst")).unwrap_or_else(|e| panic!("{e}: {downloaded}"));
    assert!(archive.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "not a zstd archive: {downloaded}");
    assert!(downloaded.contains("first-data.tar.zst"), "{downloaded}");
    let piped = cairn_in(&env, &namespace, &dir, &["backup", "download", "first", "-o", "-"]);
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(piped.stdout, archive, "standard output is not the archive");

    // A location the server cannot open (its Secret is missing): the backup ends FailedValidation, exit 1.
    succeeded(cairn(
        &env,
        &namespace,
        &[
            "backup-location",
            "create",
            "broken",
            "--provider",
            "aws",
            "--bucket",
            &info.s3_bucket,
            "--config",
            &config,
            "--credential",
            "missing=cloud",
        ],
    ));
    let refused = cairn(&env, &namespace, &["backup", "create", "bad", "--storage-location", "broken", "--wait"]);
    let stdout = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&refused.stderr));
    assert!(stdout.contains("Backup bad FailedValidation") && stdout.contains("secret missing"), "{stdout}");

    let target = env.unique_name("cli-srv-copy");
    let mapping = format!("{workload}:{target}");
    succeeded(cairn(
        &env,
        &namespace,
        &["restore", "create", "copy", "--from-backup", "first", "--namespace-mappings", &mapping, "--wait"],
    ));
    let copied: Api<ConfigMap> = Api::namespaced(client.clone(), &target);
    assert!(copied.get_opt("shop-config").await.unwrap().is_some());
    let restores = succeeded(cairn(&env, &namespace, &["restore", "get"]));
    assert!(restores.contains("copy") && restores.contains("Completed"), "{restores}");
    let restore_logs = succeeded(cairn(&env, &namespace, &["restore", "logs", "copy"]));
    assert!(restore_logs.contains("restore copy Completed"), "{restore_logs}");
    let restore_details = succeeded(cairn(&env, &namespace, &["restore", "describe", "copy", "--details"]));
    assert!(
        restore_details.contains("shop-config") && restore_details.starts_with("Restore copy"),
        "{restore_details}"
    );

    succeeded(cairn(
        &env,
        &namespace,
        &["schedule", "create", "often", "--schedule", "@every 5s", "--include-namespaces", &workload],
    ));
    eventually("a scheduled backup", || {
        let listed = succeeded(cairn(&env, &namespace, &["backup", "get", "-o", "json"]));
        listed.contains("\"often-")
    })
    .await;
    succeeded(cairn(&env, &namespace, &["schedule", "pause", "often"]));
    eventually("a Completed backup of the schedule", || {
        let listed: Value =
            serde_json::from_str(&succeeded(cairn(&env, &namespace, &["backup", "get", "-o", "json"]))).unwrap();
        listed.as_array().unwrap().iter().any(|b| {
            b["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("often-"))
                && b["status"]["phase"] == "Completed"
        })
    })
    .await;
    let scheduled_copy = env.unique_name("cli-srv-sched");
    let mapping = format!("{workload}:{scheduled_copy}");
    let from_schedule = succeeded(cairn(
        &env,
        &namespace,
        &["restore", "create", "--from-schedule", "often", "--namespace-mappings", &mapping, "--wait", "-o", "json"],
    ));
    let report: Value = serde_json::from_str(&from_schedule).unwrap();
    assert_eq!(report["restore"]["status"]["phase"], "Completed", "{from_schedule}");
    assert!(
        report["restore"]["spec"]["backupName"].as_str().is_some_and(|b| b.starts_with("often-")),
        "{from_schedule}"
    );
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &scheduled_copy).get_opt("shop-config").await.unwrap().is_some()
    );
    let schedules = succeeded(cairn(&env, &namespace, &["schedule", "get"]));
    assert!(schedules.contains("often") && schedules.contains("@every 5s"), "{schedules}");

    succeeded(cairn(&env, &namespace, &["backup", "delete", "first", "--confirm"]));
    eventually("the deleted backup to leave the list", || {
        !succeeded(cairn(&env, &namespace, &["backup", "get"])).contains("first ")
    })
    .await;
    let gone = env.s3_store(&prefix);
    assert!(backup_core::backup::read_backup(&gone, "first").await.unwrap().is_none(), "{}", server.tail());
    // The restore made from it went with it: object and stored files.
    let restores: Api<cairn_api::Restore> = Api::namespaced(client.clone(), &namespace);
    assert!(restores.get_opt("copy").await.unwrap().is_none(), "{}", server.tail());
    assert!(backup_core::restore::find_restore(&gone, "copy").await.is_err());
}

#[tokio::test]
async fn a_server_without_leader_election_keeps_no_lease_and_still_takes_backups() {
    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let namespace = env.namespace("cli-no-lease").await;
    let workload = env.namespace("cli-no-lease-app").await;
    let config = ConfigMap {
        metadata: ObjectMeta { name: Some("settings".into()), ..Default::default() },
        data: Some([("mode".to_owned(), "lone".to_owned())].into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), &workload).create(&PostParams::default(), &config).await.unwrap();
    let dir = env.info().state_dir.join(env.unique_name("cli-no-lease-disk"));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.to_str().unwrap();
    succeeded(cairn(&env, &namespace, &["backup-location", "create", "disk", "--provider", "local", "--bucket", dir]));
    let server = ServerProcess::start(&server_binary(), &env, &namespace, "lone", &["--leader-elect=false"]).unwrap();

    let created = cairn(&env, &namespace, &["backup", "create", "lone", "--include-namespaces", &workload, "--wait"]);
    let stdout = succeeded(created);
    assert!(stdout.contains("Backup lone Completed"), "{stdout}\n{}", server.tail());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, &namespace);
    assert!(leases.get_opt(cairn_api::server::SERVER_LEASE).await.unwrap().is_none());
}
