//! The `cairn` binary against the real control plane and S3 server: what a person types, what they read,
//! and the exit codes scripts rely on.

use std::process::{Command, Output};

use cairn_tests::{
    TestEnv,
    apply::{SAMPLE_WORKLOADS, apply_manifests},
};

/// `cairn args` against the test cluster, with `storage` and the S3 server's credentials.
fn command(env: &TestEnv, storage: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(args)
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env("CAIRN_STORAGE", storage)
        .env("AWS_ACCESS_KEY_ID", &env.info().s3_access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.info().s3_secret_access_key);
    command
}

fn cairn(env: &TestEnv, storage: &str, args: &[&str]) -> Output {
    command(env, storage, args).output().expect("cairn runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn backup_lifecycle_through_the_cli() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("cli-backup").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.unwrap();
    let storage = env.info().storage_url(&env.bucket_prefix("cli"));

    let created =
        cairn(&env, &storage, &["backup", "create", "nightly", "--include-namespaces", &namespace, "-o", "json"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let report: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(report["backup"]["status"]["phase"], "Completed");
    assert_eq!(report["results"]["counts"]["configmaps"], 3);

    let listed = cairn(&env, &storage, &["backup", "get"]);
    let listed = text(&listed.stdout);
    assert!(listed.starts_with("NAME") && listed.contains("nightly") && listed.contains("Completed"), "{listed}");
    let yaml = cairn(&env, &storage, &["backup", "describe", "nightly", "--details", "-o", "yaml"]);
    assert!(text(&yaml.stdout).contains(&format!("{namespace}/shop-config")));
    let verified = cairn(&env, &storage, &["backup", "verify", "nightly"]);
    assert!(verified.status.success() && text(&verified.stdout).contains("verified"), "{}", text(&verified.stdout));
    let logs = cairn(&env, &storage, &["backup", "logs", "nightly"]);
    assert!(text(&logs.stdout).contains("backup nightly Completed"), "{}", text(&logs.stdout));

    let dir = std::env::temp_dir().join(env.unique_name("cli-download"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nightly.tar.zst");
    let downloaded = cairn(&env, &storage, &["backup", "download", "nightly", "-f", file.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let again = cairn(&env, &storage, &["backup", "download", "nightly", "-f", file.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again.stderr).contains("--force"));
    // `-f -` writes the archive to standard output, nothing else; `-o FILE` is Velero's spelling of `-f FILE`.
    let piped = cairn(&env, &storage, &["backup", "download", "nightly", "-f", "-"]);
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(piped.stdout, std::fs::read(&file).unwrap(), "standard output is not the archive");
    let velero_style = dir.join("velero-style.tar.zst");
    let downloaded = cairn(&env, &storage, &["backup", "download", "nightly", "-o", velero_style.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));
    assert_eq!(std::fs::read(&velero_style).unwrap(), piped.stdout);
    std::fs::remove_dir_all(&dir).unwrap();

    // Restore: a preview into a new namespace changes nothing, then the real thing, then its records.
    let copy = env.unique_name("cli-copy");
    let mapping = format!("{namespace}:{copy}");
    let preview = cairn(
        &env,
        &storage,
        &["restore", "create", "preview", "--from-backup", "nightly", "--namespace-mappings", &mapping, "--dry-run"],
    );
    let preview_text = text(&preview.stdout);
    assert!(preview.status.success(), "{}", text(&preview.stderr));
    assert!(preview_text.starts_with("ACTION") && preview_text.contains("DryRun"), "{preview_text}");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    assert!(namespaces.get_opt(&copy).await.unwrap().is_none(), "the preview created the namespace");
    let restored = cairn(
        &env,
        &storage,
        &["restore", "create", "copy", "--from-backup", "nightly", "--namespace-mappings", &mapping, "-o", "json"],
    );
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let report: serde_json::Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(report["restore"]["status"]["phase"], "Completed");
    assert!(namespaces.get_opt(&copy).await.unwrap().is_some());
    let restores = text(&cairn(&env, &storage, &["restore", "get"]).stdout);
    assert!(restores.contains("copy") && !restores.contains("preview"), "{restores}");
    let named: serde_json::Value =
        serde_json::from_slice(&cairn(&env, &storage, &["restore", "get", "copy", "-o", "json"]).stdout).unwrap();
    assert_eq!(named.as_array().map(Vec::len), Some(1), "{named}");
    let missing = cairn(&env, &storage, &["restore", "get", "copy", "nope"]);
    assert!(!missing.status.success() && text(&missing.stderr).contains("no restore named \"nope\""));
    let described = text(&cairn(&env, &storage, &["restore", "describe", "copy", "--details"]).stdout);
    assert!(described.contains("shop-config"), "{described}");
    let restore_logs = text(&cairn(&env, &storage, &["restore", "logs", "copy"]).stdout);
    assert!(restore_logs.contains("restore copy Completed"), "{restore_logs}");
    let bad_mapping =
        cairn(&env, &storage, &["restore", "create", "--from-backup", "nightly", "--namespace-mappings", "nocolon"]);
    assert!(text(&bad_mapping.stderr).contains("write old:new"), "{}", text(&bad_mapping.stderr));

    let duplicate = cairn(&env, &storage, &["backup", "create", "nightly"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(text(&duplicate.stderr).contains("already exists"), "{}", text(&duplicate.stderr));

    let unconfirmed = cairn(&env, &storage, &["backup", "delete", "nightly"]);
    assert!(!unconfirmed.status.success() && text(&unconfirmed.stderr).contains("--confirm"));
    let deleted = cairn(&env, &storage, &["backup", "delete", "nightly", "nightly", "--confirm", "-o", "json"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let report: serde_json::Value = serde_json::from_slice(&deleted.stdout).unwrap();
    assert_eq!(report[0]["name"], "nightly", "{report}");
    assert!(report[0]["filesRemoved"].as_u64().is_some_and(|n| n > 0), "{report}");
    let gone = cairn(&env, &storage, &["backup", "describe", "nightly"]);
    assert!(!gone.status.success() && text(&gone.stderr).contains("no backup named \"nightly\""));
}

#[test]
fn bad_input_gets_one_clear_line_and_writes_nothing() {
    let env = TestEnv::get();
    let storage = env.info().storage_url(&env.bucket_prefix("cli-bad"));
    let with_secret = "s3://cairn-test?endpoint=http://KEY:s3cr3tV4lue@127.0.0.1:9&region=us-east-1";
    let missing_dir = std::env::temp_dir().join(env.unique_name("cairn-missing-dir"));
    let missing = format!("file://{}", missing_dir.display());
    let cases: [(&[&str], &str, &str); 12] = [
        (
            &["backup", "create", "x"],
            "s3://cairn-test?endpoint=http://127.0.0.1:9&region=us-east-1",
            "cannot be reached",
        ),
        (&["backup", "create", "Bad_Name"], &storage, "invalid backup name"),
        (&["backup", "create", "x", "-l", "a=b", "--or-selector", "c=d"], &storage, "cannot be combined"),
        (&["backup", "create", "x", "--ttl", "3 days"], &storage, "invalid duration"),
        (&["backup", "create", "x", "--ttl", "99999999h"], &storage, "longer than the longest duration"),
        (&["backup", "get"], with_secret, "carries credentials"),
        (&["backup", "get"], &missing, "does not exist"),
        (&["restore", "get"], &missing, "does not exist"),
        (&["restore", "create", "--from-backup", "x", "--namespace-mappings", "a:b,a:c"], &storage, "mapped twice"),
        (
            &["restore", "create", "--from-backup", "x", "--namespace-mappings", "a:b", "--namespace-mappings", "a:c"],
            &storage,
            "mapped twice",
        ),
        (&["backup", "create", "x"], "gs://bucket", "unsupported scheme"),
        (
            &["backup", "create", "x", "--kubeconfig", "/nonexistent/kubeconfig"],
            &storage,
            "cannot read the kubeconfig /nonexistent/kubeconfig",
        ),
    ];
    for (args, storage, message) in cases {
        let output = cairn(&env, storage, args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(!stderr.contains("s3cr3tV4lue"), "{args:?}: the secret is shown: {stderr}");
    }
    let listed = cairn(&env, &storage, &["backup", "get", "-o", "json"]);
    assert_eq!(text(&listed.stdout).trim(), "[]");
    assert!(!missing_dir.exists(), "reading a missing storage directory created it");
    // The store's error says its cause once (object_store repeats it in its message and its source).
    let unreachable = cairn(&env, "s3://cairn-test?endpoint=http://127.0.0.1:9&region=us-east-1", &["backup", "get"]);
    let stderr = text(&unreachable.stderr);
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    // A machine or image without CA certificates is told so, even for an http:// endpoint.
    let without_certificates = command(&env, &storage, &["backup", "get"])
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .env("SSL_CERT_DIR", "/nonexistent")
        .output()
        .unwrap();
    let stderr = text(&without_certificates.stderr);
    assert!(stderr.contains("has no CA certificates") && stderr.contains("ca-certificates"), "{stderr}");
}

/// Runs `cairn` with its stdout a pipe whose reader is already gone.
fn cairn_into_closed_pipe(env: &TestEnv, storage: &str, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    command(env, storage, args).stdout(writer).output().expect("cairn runs")
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_every_command_quietly_and_a_zero_ttl_means_the_default() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("cli-pipe").await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.unwrap();
    let storage = env.info().storage_url(&env.bucket_prefix("cli-pipe"));
    let created = cairn(
        &env,
        &storage,
        &["backup", "create", "b", "--include-namespaces", &namespace, "--ttl", "0", "-o", "json"],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let report: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(report["backup"]["spec"]["ttl"], "720h0m0s", "a TTL of 0 is the default, as in Velero");

    for args in [
        &["backup", "logs", "b"][..],
        &["backup", "get", "-o", "json"],
        &["backup", "get"],
        &["backup", "describe", "b", "--details", "-o", "yaml"],
        &["backup", "verify", "b"],
        &["install", "--dry-run", "-o", "yaml"],
    ] {
        let output = cairn_into_closed_pipe(&env, &storage, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("panicked"), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("Broken pipe"), "{args:?}: {}", text(&output.stderr));
    }
}

/// A tmpfs of `size` mounted at a new directory, unmounted when dropped (the test machine is root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(env: &TestEnv, size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(env.unique_name("small-disk"));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mounting a tmpfs needs root, as the test environment's node does");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_backup_with_its_cause_said_once_and_leaves_no_orphan_files() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("cli-full-disk").await;
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, &namespace);
    for i in 0..24 {
        let data =
            std::collections::BTreeMap::from([("blob".to_owned(), cairn_tests::environment::random_hex(64 * 1024))]);
        let object = k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta { name: Some(format!("blob-{i}")), ..Default::default() },
            data: Some(data),
            ..Default::default()
        };
        configmaps.create(&Default::default(), &object).await.unwrap();
    }
    let disk = SmallDisk::mount(&env, "1m");
    let storage = format!("file://{}", disk.0.display());
    let failed = cairn(&env, &storage, &["backup", "create", "big", "--include-namespaces", &namespace]);
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("No space left on device").count(), 1, "{stderr}");
    assert!(!stderr.contains("see the cause above"), "{stderr}");
    // Whatever was written: a folder holds a record, or nothing at all.
    for folder in std::fs::read_dir(disk.0.join("backups")).into_iter().flatten().flatten() {
        let files: Vec<String> = std::fs::read_dir(folder.path())
            .unwrap()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.is_empty() || files.iter().any(|f| f == "cairn-backup.json"), "orphan files: {files:?}");
    }
}

#[tokio::test]
async fn an_unwritable_temporary_directory_fails_the_backup_naming_tmpdir() {
    let env = TestEnv::get();
    let namespace = env.namespace("cli-no-tmp").await;
    let storage = env.info().storage_url(&env.bucket_prefix("cli-no-tmp"));
    let missing = std::env::temp_dir().join(format!("cairn-no-such-dir-{}", std::process::id()));
    let failed = command(&env, &storage, &["backup", "create", "no-tmp", "--include-namespaces", &namespace])
        .env("TMPDIR", &missing)
        .output()
        .expect("cairn runs");
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("temporary file for the backup"), "{stderr}");
    assert!(stderr.contains("set TMPDIR to a writable directory"), "{stderr}");
    let listed = cairn(&env, &storage, &["backup", "get", "no-tmp", "-o", "json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert!(listed.contains("\"Failed\""), "a failed backup never looks Completed: {listed}");
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_in_bounded_memory() {
    let env = TestEnv::get();
    let prefix = env.bucket_prefix("cli-bomb");
    let store = env.s3_store(&prefix);
    let namespace = env.unique_name("cli-bomb");
    // 256 MiB of one object in an archive of a few hundred kilobytes.
    let mut bomb = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"bomb","namespace":"{namespace}"}},"data":{{"x":""#
    )
    .into_bytes();
    bomb.resize(bomb.len() + 256 * 1024 * 1024, b'a');
    bomb.extend_from_slice(br#""}}"#);
    let path = backup_core::archive::item_path("configmaps", Some(&namespace), "bomb");
    cairn_tests::forge::velero_backup_raw(&store, "bomb", "1.1.0\n", &[(&path, bomb)]).await;

    let storage = env.info().storage_url(&prefix);
    let command = command(&env, &storage, &["restore", "create", "--from-backup", "bomb"]);
    let (_, peak_kib, _, output) = cairn_tests::measure::run_measured(command).unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&path) && stderr.contains("over the limit of 4194304 bytes"), "{stderr}");
    assert!(peak_kib < 100 * 1024, "the restore peaked at {peak_kib} KiB for a refused archive");
}

#[tokio::test]
async fn many_objects_near_the_size_limit_are_restored_in_bounded_memory() {
    let env = TestEnv::get();
    let prefix = env.bucket_prefix("cli-near-limit");
    let store = env.s3_store(&prefix);
    let namespace = env.unique_name("cli-near-limit");
    // 32 objects of 3.9 MiB: 125 MiB that all pass the entry limit (the API server refuses each). Read
    // ahead without a bound, as they once were, they took several times that.
    let objects: Vec<(String, Vec<u8>)> = (0..32)
        .map(|i| {
            let name = format!("big-{i:02}");
            let mut json = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{namespace}"}},"data":{{"x":""#
            )
            .into_bytes();
            json.resize(json.len() + 3900 * 1024, b'a' + (i % 26) as u8);
            json.extend_from_slice(br#""}}"#);
            (name, json)
        })
        .collect();
    let forged: Vec<cairn_tests::forge::Forged<'_>> = objects
        .iter()
        .map(|(name, json)| cairn_tests::forge::Forged {
            group_resource: "configmaps",
            namespace: Some(&namespace),
            name,
            content: json.clone(),
        })
        .collect();
    cairn_tests::forge::cairn_backup(&store, "near-limit", &forged).await;

    let storage = env.info().storage_url(&prefix);
    let command = command(&env, &storage, &["restore", "create", "--from-backup", "near-limit", "-o", "json"]);
    let (_, peak_kib, _, output) = cairn_tests::measure::run_measured(command).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(report["restore"]["status"]["totalItems"], 32, "{}", text(&output.stderr));
    assert!(peak_kib < 128 * 1024, "the restore peaked at {peak_kib} KiB");
}
