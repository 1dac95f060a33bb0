//! Backups Velero wrote are first-class: in a location Cairn reads (the real S3 server), `cairn backup get`
//! lists them marked by their format, `describe --details` reads Velero's record, results and resource list,
//! `verify` reads the archive whole and checks it against the resource list, `logs` reads Velero's log, and
//! deletion is refused (Velero keeps them); a server syncs them as Backup objects, restores one, and its
//! garbage collection leaves an expired one alone.

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use std::{io::Write, process::Output, time::Duration};

use backup_core::store::Store;
use cairn_api::{AccessMode, Backup};
use cairn_tests::{
    TestEnv,
    server::{ServerProcess, create_s3_location, install_crds},
    wait::eventually,
};
use kube::Api;
use object_store::path::Path;
use serde_json::{Value, json};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A Velero backup `name` of ConfigMaps `maps` in `namespace`, with Velero's side files; its resource list
/// names `listed` more objects than the archive holds (0 for a sound backup).
async fn velero_backup(store: &Store, name: &str, namespace: &str, maps: &[&str], listed: usize, expiration: &str) {
    let entries: Vec<(String, Value)> = maps
        .iter()
        .map(|m| {
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": m, "namespace": namespace}, "data": {"k": "v"}});
            (format!("resources/configmaps/namespaces/{namespace}/{m}.json"), object)
        })
        .collect();
    let borrowed: Vec<(&str, Value)> = entries.iter().map(|(p, o)| (p.as_str(), o.clone())).collect();
    cairn_tests::forge::velero_backup(store, name, "1.1.0\n", &borrowed).await;
    let record = json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
        "spec": {"includedNamespaces": [namespace], "ttl": "720h0m0s", "storageLocation": "default"},
        "status": {"version": 1, "formatVersion": "1.1.0", "phase": "Completed", "expiration": expiration,
            "startTimestamp": "2026-12-01T00:00:00Z", "completionTimestamp": "2026-12-01T00:00:05Z",
            "progress": {"totalItems": maps.len(), "itemsBackedUp": maps.len()}, "warnings": 1}});
    let file = |suffix: &str| Path::from_iter(["backups", name, &format!("{name}{suffix}")]);
    store
        .overwrite(
            &Path::from_iter(["backups", name, "velero-backup.json"]),
            serde_json::to_vec(&record).unwrap().into(),
        )
        .await
        .unwrap();
    let mut names: Vec<String> = maps.iter().map(|m| format!("{namespace}/{m}")).collect();
    names.extend((0..listed).map(|i| format!("{namespace}/missing-{i}")));
    let list = json!({"v1/ConfigMap": names});
    store.overwrite(&file("-resource-list.json.gz"), gzip(&serde_json::to_vec(&list).unwrap()).into()).await.unwrap();
    store.overwrite(&file("-logs.gz"), gzip(b"level=info msg=\"Backup completed\"\n").into()).await.unwrap();
    let results = json!({"warnings": {"velero": ["a warning Velero recorded"]}, "errors": {}});
    store.overwrite(&file("-results.gz"), gzip(&serde_json::to_vec(&results).unwrap()).into()).await.unwrap();
}

fn cairn(env: &TestEnv, storage: &str, args: &[&str]) -> Output {
    let info = env.info();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(args)
        .args(["--storage", storage])
        .env("KUBECONFIG", &info.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", &info.s3_access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &info.s3_secret_access_key);
    command.output().expect("cairn runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

#[tokio::test]
async fn velero_backups_are_listed_described_verified_synced_and_never_deleted_by_cairn() {
    let env = TestEnv::get();
    let client = env.client().await;
    let prefix = env.bucket_prefix("velero-first-class");
    let store = env.s3_store(&prefix);
    let namespace = env.unique_name("velero-app");
    velero_backup(&store, "velero-nightly", &namespace, &["a", "b"], 0, "2099-01-01T00:00:00Z").await;
    velero_backup(&store, "velero-short", &namespace, &["a"], 1, "2020-01-01T00:00:00Z").await;
    let storage = env.info().storage_url(&prefix);

    let listed = json_of(&cairn(&env, &storage, &["backup", "get", "-o", "json"]));
    let nightly = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["metadata"]["name"] == "velero-nightly")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(nightly["status"]["formatVersion"], "velero/1.1.0", "{nightly}");
    assert_eq!(nightly["status"]["phase"], "Completed");

    let described =
        json_of(&cairn(&env, &storage, &["backup", "describe", "velero-nightly", "--details", "-o", "json"]));
    assert_eq!(described["results"]["warnings"][0]["reason"], "a warning Velero recorded", "{described}");
    assert_eq!(described["resourceList"]["v1/ConfigMap"].as_array().unwrap().len(), 2, "{described}");
    let logs = cairn(&env, &storage, &["backup", "logs", "velero-nightly"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("Backup completed"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );

    let sound = cairn(&env, &storage, &["backup", "verify", "velero-nightly"]);
    assert!(
        sound.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&sound.stdout),
        String::from_utf8_lossy(&sound.stderr)
    );
    let short = cairn(&env, &storage, &["backup", "verify", "velero-short"]);
    let said = format!("{}{}", String::from_utf8_lossy(&short.stdout), String::from_utf8_lossy(&short.stderr));
    assert!(
        !short.status.success() && said.contains("the resource list names 2 objects, the archive holds 1"),
        "{said}"
    );

    let refused = cairn(&env, &storage, &["backup", "delete", "velero-nightly", "--confirm"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("velero backup delete velero-nightly"), "{stderr}");

    // A server syncs them as objects, restores one, and leaves the expired one to Velero.
    install_crds(&client).await;
    let server_namespace = env.namespace("velero-sync").await;
    create_s3_location(&client, &env, &server_namespace, "default", &prefix, AccessMode::ReadWrite).await;
    let _server = ServerProcess::start(
        &support::server_binary(),
        &env,
        &server_namespace,
        "velero-sync",
        &["--leader-elect", "false", "--backup-sync-period", "1s", "--garbage-collection-frequency", "1s"],
    )
    .expect("the server starts");
    let backups: Api<Backup> = Api::namespaced(client.clone(), &server_namespace);
    // Sync creates each object, then writes its status: wait for both steps.
    let synced = eventually(Duration::from_secs(60), "both Velero backups synced with their status", || {
        let backups = backups.clone();
        async move {
            let all = backups.list(&Default::default()).await.ok()?.items;
            (all.len() == 2 && all.iter().all(|b| b.status.is_some())).then_some(all)
        }
    })
    .await;
    for backup in &synced {
        let format = backup.status.as_ref().and_then(|s| s.format_version.clone()).unwrap_or_default();
        assert_eq!(format, "velero/1.1.0", "{backup:?}");
    }
    let restored = support::cairn(
        &env,
        &server_namespace,
        &["restore", "create", "from-velero", "--from-backup", "velero-nightly", "--wait"],
    );
    assert!(
        restored.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &namespace);
    assert!(maps.get_opt("b").await.unwrap().is_some(), "the Velero backup's ConfigMap was not restored");
    // Garbage collection runs every second: the expired Velero backup is still there, its files too.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(backups.get_opt("velero-short").await.unwrap().is_some(), "Cairn's GC deleted a Velero backup");
    assert!(store.get_bytes(&Path::from_iter(["backups", "velero-short", "velero-short.tar.gz"])).await.is_ok());
}

#[tokio::test]
async fn a_backup_in_velero_format_is_written_in_velero_layout_too() {
    use cairn_tests::apply::apply_manifests;
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("velero-format").await;
    apply_manifests(
        &client,
        &format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {namespace}}}\ndata: {{k: v}}\n"),
    )
    .await
    .unwrap();
    let prefix = env.bucket_prefix("velero-format");
    let storage = env.info().storage_url(&prefix);
    let refused = cairn(
        &env,
        &storage,
        &[
            "backup",
            "create",
            "zstd",
            "--format",
            "velero",
            "--compression",
            "zstd",
            "--include-namespaces",
            &namespace,
        ],
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("format velero needs gzip compression"));
    let created =
        cairn(&env, &storage, &["backup", "create", "both", "--format", "velero", "--include-namespaces", &namespace]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let store = env.s3_store(&prefix);
    let file = |suffix: &str| Path::from_iter(["backups", "both", &format!("both{suffix}")]);
    let record: Value = serde_json::from_slice(
        &store.get_bytes(&Path::from_iter(["backups", "both", "velero-backup.json"])).await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        (record["kind"].as_str(), record["status"]["phase"].as_str()),
        (Some("Backup"), Some("Completed")),
        "{record}"
    );
    assert_eq!(record["status"]["formatVersion"], "1.1.0");
    assert_eq!(record["spec"]["includedNamespaces"], json!([namespace]));
    for suffix in [".tar.gz", "-logs.gz", "-resource-list.json.gz", "-results.gz"] {
        assert!(store.get_bytes(&file(suffix)).await.is_ok(), "both{suffix} is missing");
    }
    let list: Value = store.get_gzip_json(&file("-resource-list.json.gz")).await.unwrap();
    assert!(list["v1/ConfigMap"].as_array().unwrap().contains(&json!(format!("{namespace}/settings"))), "{list}");
    // Cairn itself sees its own record (with its checksums) first.
    let described = json_of(&cairn(&env, &storage, &["backup", "describe", "both", "-o", "json"]));
    assert_ne!(described["backup"]["status"]["formatVersion"], "velero/1.1.0", "{described}");
    assert!(cairn(&env, &storage, &["backup", "verify", "both"]).status.success());
}

#[tokio::test]
async fn a_location_set_to_velero_format_writes_every_backup_in_velero_layout_too() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("velero-location").await;
    let prefix = env.bucket_prefix("velero-location");
    install_crds(&client).await;
    let server_namespace = env.namespace("velero-location-server").await;
    create_s3_location(&client, &env, &server_namespace, "default", &prefix, AccessMode::ReadWrite).await;
    let set =
        support::cairn(&env, &server_namespace, &["backup-location", "set", "default", "--backup-format", "velero"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let _server = ServerProcess::start(
        &support::server_binary(),
        &env,
        &server_namespace,
        "velero-location",
        &["--leader-elect", "false", "--backup-sync-period", "0s"],
    )
    .expect("the server starts");
    let created = support::cairn(
        &env,
        &server_namespace,
        &["backup", "create", "by-location", "--include-namespaces", &namespace, "--wait"],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let store = env.s3_store(&prefix);
    let record: Value = serde_json::from_slice(
        &store.get_bytes(&Path::from_iter(["backups", "by-location", "velero-backup.json"])).await.unwrap(),
    )
    .unwrap();
    assert_eq!(record["status"]["phase"], "Completed", "{record}");
    assert!(store.get_bytes(&Path::from_iter(["backups", "by-location", "by-location.tar.gz"])).await.is_ok());
    let backup = Api::<Backup>::namespaced(client.clone(), &server_namespace).get("by-location").await.unwrap();
    assert_eq!(backup.spec.format, Some(cairn_api::BackupFormat::Velero), "the object says which layout it got");
}
