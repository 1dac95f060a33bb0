//! The `cairn` binary in server mode against the real control plane, with Cairn's CRDs installed but no server
//! running: the objects each command creates or changes, what it prints, the one-line errors, and how the CLI
//! decides between standalone and server mode. (The end-to-end tests with a running server are elsewhere.)

use cairn_api::{
    AccessMode, Backup, BackupObjectStatus, BackupPhase, BackupSpec, BackupStorageLocation, DeleteBackupRequest,
    DownloadRequest, DownloadTargetKind, Restore, Schedule, ServerStatusRequest, labels,
};
use std::process::{Command, Output};

#[allow(dead_code)] // Each test binary uses part of it.
mod support;

use cairn_api::server::SERVER_LEASE;
use cairn_tests::{TestEnv, server::install_crds};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use support::{cairn, succeeded};

/// Runs `cairn` with `CAIRN_STORAGE` set: standalone.
fn cairn_standalone(env: &TestEnv, namespace: &str, storage: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .args(["--namespace", namespace])
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env("CAIRN_STORAGE", storage)
        .env("AWS_ACCESS_KEY_ID", &env.info().s3_access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.info().s3_secret_access_key)
        .env_remove("CAIRN_NAMESPACE")
        .output()
        .expect("cairn runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command failed with one line on stderr containing every one of `expected`.
fn failed_with(output: Output, expected: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Plays a server's part in the Lease `cairn-server` of `namespace`: held by `cli-test`, renewed `renewed_ago`
/// ago, for `seconds` at a time.
async fn hold_lease(client: &Client, namespace: &str, renewed_ago: jiff::SignedDuration, seconds: i32) {
    let lease = Lease {
        metadata: ObjectMeta { name: Some(SERVER_LEASE.into()), ..ObjectMeta::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("cli-test".into()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(jiff::Timestamp::now() - renewed_ago)),
            ..LeaseSpec::default()
        }),
    };
    Api::<Lease>::namespaced(client.clone(), namespace).create(&PostParams::default(), &lease).await.unwrap();
}

/// The environment with Cairn's CRDs, a client, and a namespace of the test's own for the "server".
async fn server_namespace(base: &str) -> (TestEnv, Client, String) {
    let env = TestEnv::get();
    let client = env.client().await;
    install_crds(&client).await;
    let namespace = env.namespace(base).await;
    (env, client, namespace)
}

#[tokio::test]
async fn schedule_create_pause_unpause_delete_change_the_schedule_object() {
    let (env, client, ns) = server_namespace("cli-schedule").await;
    let schedules: Api<Schedule> = Api::namespaced(client, &ns);
    create_location(&env, &ns, "primary", &[]);

    let created = succeeded(cairn(
        &env,
        &ns,
        &[
            "schedule",
            "create",
            "daily",
            "--schedule",
            "CRON_TZ=Europe/Paris 0 3 * * *",
            "--include-namespaces",
            "shop,web",
            "--ttl",
            "72h",
            "--storage-location",
            "primary",
            "--skip-immediately",
            "-o",
            "json",
        ],
    ));
    let report = json_of(&created);
    assert_eq!(report["kind"], "Schedule");
    assert_eq!(report["spec"]["schedule"], "CRON_TZ=Europe/Paris 0 3 * * *");
    assert!(report["metadata"].get("managedFields").is_none(), "{created}");

    let schedule = schedules.get("daily").await.unwrap();
    assert_eq!(schedule.spec.template.selection.included_namespaces, ["shop", "web"]);
    assert_eq!(schedule.spec.template.ttl, "72h");
    assert_eq!(schedule.spec.template.storage_location, "primary");
    assert_eq!(schedule.spec.skip_immediately, Some(true));
    assert_eq!(schedule.spec.use_owner_references_in_backup, None);
    assert!(!schedule.spec.paused);

    let table = succeeded(cairn(&env, &ns, &["schedule", "get"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "CREATED", "SCHEDULE", "BACKUP", "TTL", "LAST", "BACKUP", "SELECTOR", "PAUSED"]
    );
    assert!(table.contains("daily") && table.contains("0 3 * * *") && table.contains("72h"), "{table}");
    let listed = json_of(&succeeded(cairn(&env, &ns, &["schedule", "get", "-o", "json"])));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["metadata"]["name"], "daily");

    let paused = succeeded(cairn(&env, &ns, &["schedule", "pause", "daily"]));
    assert!(paused.contains("paused successfully"), "{paused}");
    assert!(schedules.get("daily").await.unwrap().spec.paused);
    let again = succeeded(cairn(&env, &ns, &["schedule", "pause", "daily"]));
    assert!(again.contains("already paused"), "{again}");
    let described = succeeded(cairn(&env, &ns, &["schedule", "describe", "daily"]));
    assert!(described.contains("Paused:       true") && described.contains("Included:  shop, web"), "{described}");
    let yaml: Value =
        serde_yaml_ng::from_str(&succeeded(cairn(&env, &ns, &["schedule", "describe", "daily", "-o", "yaml"])))
            .unwrap();
    assert_eq!(yaml["spec"]["paused"], true);

    succeeded(cairn(&env, &ns, &["schedule", "unpause", "daily"]));
    let unpaused = schedules.get("daily").await.unwrap();
    assert!(!unpaused.spec.paused);
    // skipImmediately: the firing due at the unpause is recorded as skipped, so the server does not fire it.
    assert!(unpaused.status.and_then(|s| s.last_skipped).is_some());

    let paused = json_of(&succeeded(cairn(&env, &ns, &["schedule", "pause", "daily", "-o", "json"])));
    assert_eq!((paused["kind"].as_str(), paused["spec"]["paused"].as_bool()), (Some("Schedule"), Some(true)));
    let unpaused = json_of(&succeeded(cairn(&env, &ns, &["schedule", "unpause", "daily", "-o", "json"])));
    assert_eq!(unpaused["spec"]["paused"], false, "{unpaused}");

    // No TTL: the server's default applies; never fired and no skipImmediately: the server fires it at once.
    let hourly = succeeded(cairn(&env, &ns, &["schedule", "create", "hourly", "--schedule", "@hourly"]));
    assert!(hourly.contains("Its first backup is made now"), "{hourly}");
    let described = succeeded(cairn(&env, &ns, &["schedule", "describe", "hourly"]));
    assert!(
        described.contains("Next backup:  now") && described.contains("TTL:               <server default>"),
        "{described}"
    );
    let table = succeeded(cairn(&env, &ns, &["schedule", "get", "hourly"]));
    assert!(table.lines().any(|l| l.starts_with("hourly") && l.contains("<server default>")), "{table}");
    let deleted: Value = serde_yaml_ng::from_str(&succeeded(cairn(
        &env,
        &ns,
        &["schedule", "delete", "hourly", "--confirm", "-o", "yaml"],
    )))
    .unwrap();
    assert_eq!(deleted["metadata"]["name"], "hourly");

    failed_with(cairn(&env, &ns, &["schedule", "delete", "daily"]), &["--confirm"]);
    assert!(schedules.get_opt("daily").await.unwrap().is_some());
    let deleted = succeeded(cairn(&env, &ns, &["schedule", "delete", "daily", "--confirm"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(schedules.get_opt("daily").await.unwrap().is_none());
    failed_with(cairn(&env, &ns, &["schedule", "describe", "daily"]), &["no Schedule named \"daily\"", "schedule get"]);
    failed_with(cairn(&env, &ns, &["schedule", "pause", "daily"]), &["no Schedule named \"daily\""]);
}

#[tokio::test]
async fn bad_schedule_flags_are_refused_in_one_line_and_create_nothing() {
    let (env, client, ns) = server_namespace("cli-bad-schedule").await;
    let cases: [(&[&str], &[&str]); 7] = [
        (&["schedule", "create", "bad", "--schedule", "61 * * * *"], &["invalid schedule \"61 * * * *\"", "0 3 * * *"]),
        (&["schedule", "create", "bad", "--schedule", "0 3 * *"], &["invalid schedule", "4 fields, expected 5"]),
        (&["schedule", "create", "bad", "--schedule", "CRON_TZ=Mars/Olympus 0 3 * * *"], &["unknown time zone"]),
        (
            &["schedule", "create", "Bad_Name", "--schedule", "@daily"],
            &["invalid schedule name \"Bad_Name\"", "lowercase"],
        ),
        (&["schedule", "create", "bad", "--schedule", "@daily", "--ttl", "3d"], &["--ttl", "invalid duration", "720h"]),
        (
            &["schedule", "create", "bad", "--schedule", "@daily", "-l", "a=b", "--or-selector", "c=d"],
            &["cannot be combined"],
        ),
        (
            &["schedule", "create", "bad", "--schedule", "@daily", "--storage-location", "nowhere"],
            &["no BackupStorageLocation named \"nowhere\""],
        ),
    ];
    for (args, expected) in cases {
        failed_with(cairn(&env, &ns, args), expected);
    }
    let schedules: Api<Schedule> = Api::namespaced(client, &ns);
    assert!(schedules.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert_eq!(json_of(&succeeded(cairn(&env, &ns, &["schedule", "get", "-o", "json"]))), json!([]));
}

#[tokio::test]
async fn backup_location_create_set_get_delete_keep_one_default() {
    let (env, client, ns) = server_namespace("cli-location").await;
    let locations: Api<BackupStorageLocation> = Api::namespaced(client, &ns);

    succeeded(cairn(
        &env,
        &ns,
        &[
            "backup-location",
            "create",
            "primary",
            "--provider",
            "aws",
            "--bucket",
            "backups",
            "--prefix",
            "/cluster-a/",
            "--config",
            "region=eu-west-1,s3Url=http://127.0.0.1:9000",
            "--credential",
            "cloud-credentials=cloud",
            "--default",
        ],
    ));
    let primary = locations.get("primary").await.unwrap();
    assert_eq!(primary.spec.provider, "aws");
    assert_eq!(primary.spec.object_storage.bucket, "backups");
    assert_eq!(primary.spec.object_storage.prefix.as_deref(), Some("cluster-a"));
    assert_eq!(primary.spec.config.get("region").map(String::as_str), Some("eu-west-1"));
    assert_eq!(primary.spec.config.get("s3Url").map(String::as_str), Some("http://127.0.0.1:9000"));
    let credential = primary.spec.credential.clone().unwrap();
    assert_eq!((credential.name.as_str(), credential.key.as_str()), ("cloud-credentials", "cloud"));
    assert!(primary.spec.default);
    assert_eq!(primary.spec.access_mode, AccessMode::ReadWrite);

    let second = succeeded(cairn(
        &env,
        &ns,
        &["backup-location", "create", "local", "--provider", "local", "--bucket", "/var/lib/cairn", "--default"],
    ));
    assert!(second.contains("\"primary\" no longer the default"), "{second}");
    assert!(!locations.get("primary").await.unwrap().spec.default);
    assert!(locations.get("local").await.unwrap().spec.default);

    failed_with(
        cairn(&env, &ns, &["backup-location", "create", "rel", "--provider", "local", "--bucket", "backups"]),
        &["absolute directory"],
    );
    failed_with(
        cairn(&env, &ns, &["backup-location", "create", "pfx", "--provider", "aws", "--bucket", "b/p"]),
        &["--prefix"],
    );
    failed_with(
        cairn(
            &env,
            &ns,
            &["backup-location", "create", "cfg", "--provider", "aws", "--bucket", "b", "--config", "region"],
        ),
        &["key=value"],
    );
    failed_with(
        cairn(&env, &ns, &["backup-location", "create", "primary", "--provider", "aws", "--bucket", "b"]),
        &["already exists", "\"primary\""],
    );
    failed_with(
        cairn(&env, &ns, &["backup-location", "create", "primary", "--provider", "aws", "--bucket", "b", "--default"]),
        &["already exists", "\"primary\""],
    );
    assert!(locations.get("local").await.unwrap().spec.default, "a refused create changed the default");
    // Checked as the server will read it: unknown keys are refused, Velero's MinIO settings accepted.
    failed_with(
        cairn(
            &env,
            &ns,
            &[
                "backup-location",
                "create",
                "tls",
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--config",
                "insecureSkipTLSVerify=true",
            ],
        ),
        &["backup storage location \"tls\"", "unknown config key \"insecureSkipTLSVerify\""],
    );
    let minio = "s3Url=http://127.0.0.1:9000,region=minio,s3ForcePathStyle=true";
    succeeded(cairn(
        &env,
        &ns,
        &["backup-location", "create", "minio", "--provider", "aws", "--bucket", "b", "--config", minio],
    ));

    succeeded(cairn(&env, &ns, &["backup-location", "set", "primary", "--default", "--access-mode", "ReadOnly"]));
    let primary = locations.get("primary").await.unwrap();
    assert!(primary.spec.default);
    assert_eq!(primary.spec.access_mode, AccessMode::ReadOnly);
    assert!(!locations.get("local").await.unwrap().spec.default);
    succeeded(cairn(&env, &ns, &["backup-location", "set", "primary", "--credential", "other=key"]));
    assert_eq!(locations.get("primary").await.unwrap().spec.credential.unwrap().name, "other");
    failed_with(cairn(&env, &ns, &["backup-location", "set", "primary"]), &["nothing to change", "--default"]);
    failed_with(cairn(&env, &ns, &["backup-location", "set", "nowhere", "--default"]), &["no BackupStorageLocation"]);

    let table = succeeded(cairn(&env, &ns, &["backup-location", "get"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PROVIDER", "BUCKET/PREFIX", "PHASE", "LAST", "VALIDATED", "ACCESS", "MODE", "DEFAULT"]
    );
    assert!(table.contains("backups/cluster-a") && table.contains("/var/lib/cairn"), "{table}");
    let listed: Value =
        serde_yaml_ng::from_str(&succeeded(cairn(&env, &ns, &["backup-location", "get", "-o", "yaml"]))).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|l| l["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["local", "minio", "primary"]);

    failed_with(cairn(&env, &ns, &["backup-location", "delete", "local"]), &["--confirm"]);
    let deleted =
        json_of(&succeeded(cairn(&env, &ns, &["backup-location", "delete", "local", "--confirm", "-o", "json"])));
    assert_eq!(deleted["metadata"]["name"], "local");
    assert!(locations.get_opt("local").await.unwrap().is_none());
}

#[tokio::test]
async fn backup_create_without_wait_creates_the_backup_object_and_later_commands_read_it() {
    let (env, client, ns) = server_namespace("cli-backup-object").await;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    hold_lease(&client, &ns, jiff::SignedDuration::ZERO, 3600).await;
    create_location(&env, &ns, "primary", &["--default"]);
    create_location(&env, &ns, "archive", &["--access-mode", "ReadOnly"]);

    let created = succeeded(cairn(
        &env,
        &ns,
        &[
            "backup",
            "create",
            "nightly",
            "--include-namespaces",
            "shop,web",
            "--exclude-resources",
            "secrets",
            "-l",
            "app=web",
            "--ttl",
            "24h",
            "--storage-location",
            "primary",
            "--labels",
            "team=payments",
            "--include-cluster-resources",
            "-o",
            "json",
        ],
    ));
    assert_eq!(json_of(&created)["backup"]["metadata"]["name"], "nightly");
    let backup = backups.get("nightly").await.unwrap();
    assert_eq!(backup.spec.selection.included_namespaces, ["shop", "web"]);
    assert_eq!(backup.spec.selection.excluded_resources, ["secrets"]);
    assert!(backup.spec.selection.label_selector.is_some());
    assert_eq!(backup.spec.selection.include_cluster_resources, Some(true));
    assert_eq!(backup.spec.ttl, "24h");
    assert_eq!(backup.spec.storage_location, "primary");
    assert_eq!(backup.labels().get(labels::STORAGE_LOCATION).map(String::as_str), Some("primary"));
    assert_eq!(backup.labels().get("team").map(String::as_str), Some("payments"));
    assert!(backup.status.is_none());

    let plain = succeeded(cairn(&env, &ns, &["backup", "create", "plain", "--or-selector", "app=a or tier in (x,y)"]));
    assert!(plain.contains("submitted successfully"), "{plain}");
    let plain = backups.get("plain").await.unwrap();
    assert_eq!(plain.spec.storage_location, "");
    assert!(!plain.labels().contains_key(labels::STORAGE_LOCATION));
    assert_eq!(plain.spec.ttl, "", "no --ttl: the server's --default-backup-ttl applies");
    let selectors = &plain.spec.selection.or_label_selectors;
    assert_eq!(selectors.len(), 2, "{selectors:?}");
    assert_eq!(selectors[0].match_labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("a"));

    failed_with(cairn(&env, &ns, &["backup", "create", "nightly"]), &["Backup \"nightly\" already exists"]);
    failed_with(cairn(&env, &ns, &["backup", "create", "x", "--ttl", "5d"]), &["invalid duration"]);
    failed_with(cairn(&env, &ns, &["backup", "create", "Bad_Name"]), &["invalid backup name"]);
    failed_with(
        cairn(&env, &ns, &["backup", "create", "glued", "-l", "app=a or app=b"]),
        &["\"a or app=b\" is not a valid label value", "--or-selector"],
    );
    failed_with(
        cairn(&env, &ns, &["backup", "create", "typo", "--storage-location", "primray"]),
        &["no BackupStorageLocation named \"primray\"", "backup-location get"],
    );
    failed_with(
        cairn(&env, &ns, &["backup", "create", "cold", "--storage-location", "archive"]),
        &["\"archive\" is ReadOnly", "--access-mode ReadWrite"],
    );
    // The default location is resolved as the server resolves it: ReadOnly, absent or ambiguous is refused.
    let locations: Api<BackupStorageLocation> = Api::namespaced(client.clone(), &ns);
    let set = |default: bool, mode: &str| json!({"spec": {"default": default, "accessMode": mode}});
    locations.patch("primary", &PatchParams::default(), &Patch::Merge(set(true, "ReadOnly"))).await.unwrap();
    failed_with(cairn(&env, &ns, &["backup", "create", "ro"]), &["\"primary\" is ReadOnly", "--access-mode ReadWrite"]);
    locations.patch("primary", &PatchParams::default(), &Patch::Merge(set(false, "ReadWrite"))).await.unwrap();
    failed_with(
        cairn(&env, &ns, &["backup", "create", "undecided"]),
        &["(archive, primary) is the default", "backup-location set NAME --default"],
    );
    locations.patch("archive", &PatchParams::default(), &Patch::Merge(set(true, "ReadOnly"))).await.unwrap();
    locations.patch("primary", &PatchParams::default(), &Patch::Merge(set(true, "ReadWrite"))).await.unwrap();
    failed_with(cairn(&env, &ns, &["backup", "create", "twice"]), &["archive, primary", "all marked default"]);
    locations.patch("archive", &PatchParams::default(), &Patch::Merge(set(false, "ReadOnly"))).await.unwrap();
    for refused in ["typo", "cold", "glued", "ro", "undecided", "twice"] {
        assert!(backups.get_opt(refused).await.unwrap().is_none(), "{refused} was created");
    }

    let table = succeeded(cairn(&env, &ns, &["backup", "get"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE", "LOCATION", "SELECTOR"]
    );
    let row = table.lines().find(|l| l.starts_with("nightly")).unwrap();
    assert!(row.contains("New") && row.contains("primary") && row.contains("app=web"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("plain") && l.contains("<default>")), "{table}");
    let described = succeeded(cairn(&env, &ns, &["backup", "describe", "nightly"]));
    assert!(described.contains("Phase:        New") && described.contains("Excluded:        secrets"), "{described}");
    let described = succeeded(cairn(&env, &ns, &["backup", "describe", "plain"]));
    assert!(described.contains("TTL:               <server default>"), "{described}");
    failed_with(cairn(&env, &ns, &["backup", "logs", "nightly"]), &["is New", "stored when it ends"]);
    failed_with(cairn(&env, &ns, &["backup", "get", "missing"]), &["no Backup named \"missing\"", "backup get"]);

    // A restore needs a finished backup; as the server would, mark it Completed.
    failed_with(cairn(&env, &ns, &["restore", "create", "--from-backup", "nightly"]), &["is New", "Completed"]);
    let status = BackupObjectStatus { phase: Some(BackupPhase::Completed), ..BackupObjectStatus::default() };
    backups.patch_status("nightly", &PatchParams::default(), &Patch::Merge(json!({ "status": status }))).await.unwrap();
    succeeded(cairn(
        &env,
        &ns,
        &["restore", "create", "copy", "--from-backup", "nightly", "--namespace-mappings", "shop:shop-copy"],
    ));
    let restore = Api::<Restore>::namespaced(client.clone(), &ns).get("copy").await.unwrap();
    assert_eq!(restore.spec.backup_name, "nightly");
    assert_eq!(restore.spec.namespace_mapping.get("shop").map(String::as_str), Some("shop-copy"));
    let restores = succeeded(cairn(&env, &ns, &["restore", "get"]));
    assert!(
        restores.lines().any(|l| l.starts_with("copy") && l.contains("nightly") && l.contains("New")),
        "{restores}"
    );
    let named = json_of(&succeeded(cairn(&env, &ns, &["restore", "get", "copy", "-o", "json"])));
    assert_eq!(named[0]["metadata"]["name"], "copy", "{named}");
    failed_with(cairn(&env, &ns, &["restore", "get", "copy", "nope"]), &["no Restore named \"nope\""]);
    failed_with(
        cairn(&env, &ns, &["restore", "create", "--from-backup", "nightly", "--dry-run"]),
        &["does not preview", "--storage"],
    );
    failed_with(
        cairn(&env, &ns, &["restore", "create", "--from-schedule", "weekly"]),
        &["no Schedule named \"weekly\""],
    );

    // Deletion: refused at once where the server would refuse, else one DeleteBackupRequest per backup.
    failed_with(cairn(&env, &ns, &["backup", "delete", "nightly"]), &["--confirm"]);
    failed_with(
        cairn(&env, &ns, &["backup", "delete", "plain", "--confirm"]),
        &["\"plain\" is New", "once it has finished"],
    );
    let cold = Backup {
        metadata: ObjectMeta { name: Some("cold".into()), ..ObjectMeta::default() },
        spec: BackupSpec { storage_location: "archive".into(), ..BackupSpec::default() },
        status: None,
    };
    backups.create(&PostParams::default(), &cold).await.unwrap();
    set_backup_status(&backups, "cold", json!({"phase": "Completed"})).await;
    failed_with(
        cairn(&env, &ns, &["backup", "delete", "nightly", "cold", "--confirm"]),
        &[
            "cannot delete backup \"cold\"",
            "\"archive\" is ReadOnly",
            "cairn backup-location set archive --access-mode ReadWrite",
        ],
    );
    let requests = Api::<DeleteBackupRequest>::namespaced(client.clone(), &ns);
    assert!(requests.list(&ListParams::default()).await.unwrap().items.is_empty(), "a refused deletion made a request");
    let deleted = succeeded(cairn(&env, &ns, &["backup", "delete", "nightly", "--confirm"]));
    assert!(deleted.contains("Request to delete backup \"nightly\" submitted"), "{deleted}");
    let listed = requests.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let request = &listed.items[0];
    assert!(deleted.contains(&format!("DeleteBackupRequest {}", request.name_any())), "{deleted}");
    assert_eq!(request.spec.backup_name, "nightly");
    assert!(request.name_any().starts_with("nightly-") && request.name_any().len() == "nightly-".len() + 5);
    assert_eq!(request.labels().get(labels::BACKUP_NAME).map(String::as_str), Some("nightly"));
    assert_eq!(request.labels().get(labels::BACKUP_UID), backup.uid().as_ref());

    // The server's answer shows in describe, as Velero's "Deletion Attempts" do.
    let refusal = "deleting the stored data of backup nightly failed: the bucket is gone";
    requests
        .patch_status(
            &request.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Processed", "errors": [refusal]}})),
        )
        .await
        .unwrap();
    let described = succeeded(cairn(&env, &ns, &["backup", "describe", "nightly"]));
    assert!(described.contains("Deletion attempts (1 failed):") && described.contains(refusal), "{described}");
    assert!(
        described.contains(&format!("{}  ", request.name_any())) && described.contains(": Processed"),
        "{described}"
    );
    let described = json_of(&succeeded(cairn(&env, &ns, &["backup", "describe", "nightly", "-o", "json"])));
    assert_eq!(described["deletionAttempts"][0]["status"]["errors"][0], refusal);

    let again = json_of(&succeeded(cairn(&env, &ns, &["backup", "delete", "nightly", "--confirm", "-o", "json"])));
    assert_eq!(
        (again["kind"].as_str(), again["spec"]["backupName"].as_str()),
        (Some("DeleteBackupRequest"), Some("nightly"))
    );
}

#[tokio::test]
async fn backup_create_from_schedule_takes_the_schedule_spec_and_labels() {
    let (env, client, ns) = server_namespace("cli-from-schedule").await;
    hold_lease(&client, &ns, jiff::SignedDuration::ZERO, 3600).await;
    create_location(&env, &ns, "primary", &[]);
    succeeded(cairn(
        &env,
        &ns,
        &[
            "schedule",
            "create",
            "daily",
            "--schedule",
            "@daily",
            "--include-namespaces",
            "shop",
            "--ttl",
            "48h",
            "--paused",
        ],
    ));
    let schedules: Api<Schedule> = Api::namespaced(client.clone(), &ns);
    schedules
        .patch("daily", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})))
        .await
        .unwrap();

    let created =
        json_of(&succeeded(cairn(&env, &ns, &["backup", "create", "--from-schedule", "daily", "-o", "json"])));
    let name = created["backup"]["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("daily-") && name.len() == "daily-".len() + 14, "{name}");
    let backup = Api::<Backup>::namespaced(client, &ns).get(&name).await.unwrap();
    assert_eq!(backup.spec, schedules.get("daily").await.unwrap().spec.template);
    assert_eq!(backup.labels().get(labels::SCHEDULE_NAME).map(String::as_str), Some("daily"));
    assert_eq!(backup.labels().get("team").map(String::as_str), Some("shop"));

    succeeded(cairn(&env, &ns, &["backup", "create", "manual", "--from-schedule", "daily"]));
    failed_with(
        cairn(&env, &ns, &["backup", "create", "mixed", "--from-schedule", "daily", "--ttl", "1h"]),
        &["--from-schedule takes the spec of schedule \"daily\""],
    );
    failed_with(
        cairn(&env, &ns, &["backup", "create", "--from-schedule", "weekly"]),
        &["no Schedule named \"weekly\""],
    );
}

#[tokio::test]
async fn without_a_running_server_commands_that_need_one_are_refused_in_one_line() {
    let (env, client, ns) = server_namespace("cli-no-server").await;
    create_location(&env, &ns, "primary", &["--default"]);
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    backups.create(&PostParams::default(), &Backup::new("done", BackupSpec::default())).await.unwrap();
    set_backup_status(&backups, "done", json!({"phase": "Completed"})).await;

    // CRDs outlive an uninstalled server: no Lease and no answer to a status request means no server.
    let missing = [
        &format!("no Cairn server is running in namespace {ns:?}"),
        "Lease cairn-server is missing",
        "cairn install",
        "--storage URL",
    ];
    failed_with(cairn(&env, &ns, &["backup", "create", "x", "--wait"]), &missing);
    failed_with(cairn(&env, &ns, &["restore", "create", "--from-backup", "done"]), &missing);
    failed_with(cairn(&env, &ns, &["backup", "delete", "done", "--confirm"]), &missing);
    assert!(backups.get_opt("x").await.unwrap().is_none());
    assert!(
        Api::<Restore>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap().items.is_empty()
    );
    assert!(
        Api::<DeleteBackupRequest>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Reading needs no server.
    succeeded(cairn(&env, &ns, &["backup", "get", "done"]));

    // A Lease its holder stopped renewing an hour ago is stale.
    hold_lease(&client, &ns, jiff::SignedDuration::from_hours(1), 15).await;
    failed_with(
        cairn(&env, &ns, &["backup", "create", "x"]),
        &["no Cairn server is running", "Lease cairn-server is stale: cli-test last renewed it"],
    );
    assert!(backups.get_opt("x").await.unwrap().is_none());

    // A server run with --leader-elect=false keeps no Lease but answers a status request: that is enough.
    Api::<Lease>::namespaced(client.clone(), &ns).delete(SERVER_LEASE, &Default::default()).await.unwrap();
    let create = spawn_cairn(&env, &ns, &["backup", "create", "y"]);
    let statuses: Api<ServerStatusRequest> = Api::namespaced(client, &ns);
    answer_one(&statuses, json!({"phase": "Processed", "serverVersion": "9.9.9"})).await;
    assert!(succeeded(create.wait_with_output().await.unwrap()).contains("submitted successfully"));
    assert!(backups.get_opt("y").await.unwrap().is_some());
}

#[tokio::test]
async fn cairn_is_standalone_with_a_storage_location_and_server_mode_without() {
    let (env, client, ns) = server_namespace("cli-mode").await;
    let backup = Backup::new("seen", Default::default());
    Api::<Backup>::namespaced(client, &ns).create(&PostParams::default(), &backup).await.unwrap();
    let storage = env.info().storage_url(&env.bucket_prefix("cli-mode"));

    let server_listed = json_of(&succeeded(cairn(&env, &ns, &["backup", "get", "-o", "json"])));
    assert_eq!(server_listed[0]["metadata"]["name"], "seen");
    let standalone_listed = succeeded(cairn_standalone(&env, &ns, &storage, &["backup", "get", "-o", "json"]));
    assert_eq!(json_of(&standalone_listed), json!([]));

    let version = json_of(&succeeded(cairn_standalone(&env, &ns, &storage, &["version", "-o", "json"])));
    assert_eq!(version["client"]["mode"], "standalone");
    assert!(version.get("server").is_none());
    let version = succeeded(cairn_standalone(&env, &ns, &storage, &["version"]));
    assert!(version.contains("Mode: standalone (--storage or CAIRN_STORAGE is set)"), "{version}");

    failed_with(
        cairn_standalone(&env, &ns, &storage, &["schedule", "get"]),
        &["`cairn schedule` needs a Cairn server", "standalone", "CAIRN_STORAGE"],
    );
    failed_with(
        cairn_standalone(&env, &ns, &storage, &["backup-location", "get"]),
        &["`cairn backup-location` needs a Cairn server"],
    );
    failed_with(
        cairn_standalone(&env, &ns, &storage, &["backup", "create", "x", "--storage-location", "primary"]),
        &["--storage-location", "standalone", "--storage URL"],
    );
    failed_with(cairn(&env, &ns, &["backup", "verify", "seen"]), &["--storage URL"]);
}

/// A kubeconfig for a cluster at a loopback port nothing listens on.
fn unreachable_kubeconfig(env: &TestEnv) -> (std::path::PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("https://127.0.0.1:{port}");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: {url}\n\
         users:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\n\
         current-context: gone\n"
    );
    let path = env.info().state_dir.join(env.unique_name("kubeconfig-unreachable"));
    std::fs::write(&path, text).unwrap();
    (path, url)
}

#[tokio::test]
async fn a_cluster_that_cannot_be_asked_is_an_error_not_a_silent_switch_to_standalone() {
    let env = TestEnv::get();
    let (kubeconfig, url) = unreachable_kubeconfig(&env);
    let run = |args: &[&str], storage: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command.args(args).env("KUBECONFIG", &kubeconfig).env_remove("CAIRN_NAMESPACE");
        match storage {
            Some(url) => command.env("CAIRN_STORAGE", url),
            None => command.env_remove("CAIRN_STORAGE"),
        };
        command.output().expect("cairn runs")
    };
    for args in [&["backup", "get", "-o", "json"][..], &["restore", "get"], &["schedule", "get"]] {
        let output = run(args, None);
        assert!(output.stdout.is_empty(), "{args:?}: {}", text(&output.stdout));
        failed_with(
            output,
            &[
                &format!("cannot ask the cluster at {url}"),
                "Connection refused",
                "pass --storage URL to work standalone",
            ],
        );
    }
    let version = run(&["version"], None);
    assert!(text(&version.stdout).contains(backup_core::VERSION), "{}", text(&version.stdout));
    failed_with(version, &["cannot ask the cluster"]);

    // --storage (or CAIRN_STORAGE) is standalone without asking the cluster.
    let dir = env.info().state_dir.join(env.unique_name("cli-unreachable-storage"));
    std::fs::create_dir_all(&dir).unwrap();
    let storage = format!("file://{}", dir.display());
    assert_eq!(json_of(&succeeded(run(&["backup", "get", "-o", "json"], Some(&storage)))), json!([]));
    assert_eq!(json_of(&succeeded(run(&["backup", "get", "-o", "json", "--storage", &storage], None))), json!([]));
}

#[tokio::test]
async fn kubeconfig_lists_are_merged_like_kubectl_and_unreadable_files_reported_once() {
    let (env, client, ns) = server_namespace("cli-kubeconfig").await;
    Api::<Backup>::namespaced(client, &ns)
        .create(&PostParams::default(), &Backup::new("seen", Default::default()))
        .await
        .unwrap();
    let missing = env.info().state_dir.join("no-such-kubeconfig");
    let list = std::env::join_paths([missing.as_path(), env.info().kubeconfig.as_path()]).unwrap();
    let listed = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["backup", "get", "-o", "json", "--namespace", &ns])
        .env("KUBECONFIG", &list)
        .env_remove("CAIRN_STORAGE")
        .output()
        .unwrap();
    assert_eq!(json_of(&succeeded(listed))[0]["metadata"]["name"], "seen");

    let unreadable = cairn(&env, &ns, &["backup", "get", "--kubeconfig", missing.to_str().unwrap()]);
    let stderr = text(&unreadable.stderr);
    failed_with(
        unreadable,
        &[&format!("cannot read the kubeconfig {}", missing.display()), "No such file or directory"],
    );
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "the cause is printed twice: {stderr}");
}

#[tokio::test]
async fn version_says_no_server_answered_within_its_timeout_and_how_to_install_one() {
    let (env, client, ns) = server_namespace("cli-version").await;

    let started = std::time::Instant::now();
    let output = cairn(&env, &ns, &["version", "--timeout", "2s"]);
    let elapsed = started.elapsed();
    assert!(text(&output.stdout).contains("Mode: server"), "{}", text(&output.stdout));
    failed_with(output, &[&format!("no Cairn server answered in namespace {ns:?} within 2s"), "`cairn install`"]);
    assert!(elapsed.as_secs_f64() < 10.0, "the 2 s timeout took {elapsed:?}");
    let left = Api::<ServerStatusRequest>::namespaced(client, &ns).list(&ListParams::default()).await.unwrap();
    assert!(left.items.is_empty(), "the ServerStatusRequest was left behind");

    let output = cairn(&env, &ns, &["version", "--timeout", "1s", "-o", "json"]);
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    failed_with(output, &["no Cairn server answered"]);

    let nowhere = env.unique_name("cli-no-namespace");
    failed_with(
        cairn(&env, &nowhere, &["version", "--timeout", "1s"]),
        &[&format!("namespace {nowhere:?} does not exist"), "`cairn install`"],
    );
    failed_with(cairn(&env, &ns, &["version", "--timeout", "soon"]), &["--timeout", "invalid duration"]);
}

/// Creates a BackupStorageLocation `name` (provider aws) through the CLI, with `extra` flags.
fn create_location(env: &TestEnv, namespace: &str, name: &str, extra: &[&str]) {
    let mut args = vec!["backup-location", "create", name, "--provider", "aws", "--bucket", "backups"];
    args.extend_from_slice(extra);
    succeeded(cairn(env, namespace, &args));
}

/// Starts `cairn` in the background against the server namespace `namespace`.
fn spawn_cairn(env: &TestEnv, namespace: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .args(["--namespace", namespace])
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_STORAGE")
        .env_remove("CAIRN_NAMESPACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cairn starts")
}

/// Plays the server's part for one request: waits for an object of kind `K` without a status to appear,
/// sets `status` on it, and returns it as it was found.
async fn answer_one<K>(api: &Api<K>, status: Value) -> K
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    for _ in 0..200 {
        // Just after the CRDs are installed the API server may answer 429 for a moment: ask again.
        let Ok(list) = api.list(&ListParams::default()).await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let items = list.items;
        let unanswered =
            items.into_iter().find(|item| serde_json::to_value(item).unwrap().get("status").is_none_or(Value::is_null));
        if let Some(item) = unanswered {
            api.patch_status(&item.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
                .await
                .unwrap();
            return item;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {} appeared within 10 s", K::kind(&()));
}

/// Writes `bytes` gzip-compressed to a new file and returns its `file://` URL.
fn gzip_file(env: &TestEnv, name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(env.unique_name("cli-download-links"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, bytes).unwrap();
    encoder.finish().unwrap();
    format!("file://{}", path.display())
}

async fn set_backup_status(backups: &Api<Backup>, name: &str, status: Value) {
    backups.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status }))).await.unwrap();
}

async fn wait_for_backup(backups: &Api<Backup>, name: &str) {
    for _ in 0..200 {
        if matches!(backups.get_opt(name).await, Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("backup {name} was not created within 10 s");
}

#[tokio::test]
async fn backup_create_wait_follows_the_status_and_exits_zero_only_for_completed() {
    let (env, client, ns) = server_namespace("cli-wait").await;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    hold_lease(&client, &ns, jiff::SignedDuration::ZERO, 3600).await;
    create_location(&env, &ns, "primary", &[]);

    let waiting = spawn_cairn(&env, &ns, &["backup", "create", "good", "--wait", "-o", "json"]);
    wait_for_backup(&backups, "good").await;
    set_backup_status(
        &backups,
        "good",
        json!({"phase": "InProgress", "progress": {"totalItems": 10, "itemsBackedUp": 3}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    set_backup_status(
        &backups,
        "good",
        json!({"phase": "Completed", "progress": {"totalItems": 10, "itemsBackedUp": 10}}),
    )
    .await;
    let output = waiting.wait_with_output().await.unwrap();
    let report = json_of(&succeeded(output));
    assert_eq!(report["backup"]["status"]["phase"], "Completed");
    assert_eq!(report["backup"]["status"]["progress"]["itemsBackedUp"], 10);

    let waiting = spawn_cairn(&env, &ns, &["backup", "create", "bad", "--wait"]);
    wait_for_backup(&backups, "bad").await;
    set_backup_status(&backups, "bad", json!({"phase": "Failed", "failureReason": "the bucket is gone"})).await;
    let output = waiting.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Backup bad Failed") && stdout.contains("Failure: the bucket is gone"), "{stdout}");

    // --timeout ends the wait, not the backup.
    let started = std::time::Instant::now();
    let output = cairn(&env, &ns, &["backup", "create", "slow", "--wait", "--timeout", "2s"]);
    failed_with(output, &["stopped waiting for backup slow", "gave up waiting for Backup \"slow\"", "after 2s"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(backups.get_opt("slow").await.unwrap().is_some());
    let unwaited = cairn(&env, &ns, &["backup", "create", "x", "--timeout", "2s"]);
    assert!(!unwaited.status.success() && text(&unwaited.stderr).contains("--wait"), "{}", text(&unwaited.stderr));
}

#[tokio::test]
async fn logs_details_and_version_come_from_the_server_through_requests() {
    let (env, client, ns) = server_namespace("cli-requests").await;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let downloads: Api<DownloadRequest> = Api::namespaced(client.clone(), &ns);
    backups.create(&PostParams::default(), &Backup::new("done", Default::default())).await.unwrap();
    set_backup_status(&backups, "done", json!({"phase": "Completed"})).await;

    let log = gzip_file(&env, "done-logs.gz", b"backup done Completed: 3 objects\n");
    let logs = spawn_cairn(&env, &ns, &["backup", "logs", "done"]);
    let request = answer_one(&downloads, json!({"phase": "Processed", "downloadURL": log})).await;
    assert_eq!(request.spec.target.kind, DownloadTargetKind::BackupLog);
    assert_eq!(request.spec.target.name, "done");
    assert!(request.name_any().starts_with("done-"));
    let stdout = succeeded(logs.wait_with_output().await.unwrap());
    assert!(stdout.contains("backup done Completed: 3 objects"), "{stdout}");
    assert!(downloads.list(&ListParams::default()).await.unwrap().items.is_empty(), "the request was left behind");

    // A presigned link to the S3 server, as the server hands out for S3 locations.
    let store = env.s3_store(&env.bucket_prefix("cli-links"));
    let key = backup_core::store::Layout.backup_keys("done", "20260101000000-0001", cairn_api::Compression::Zstd).log;
    store.put_gzip_text(&key, "backup done Completed: read over http\n").await.unwrap();
    let link = store.download_url(&key, std::time::Duration::from_secs(300)).await.unwrap();
    assert!(link.starts_with("http://"), "{link}");
    let logs = spawn_cairn(&env, &ns, &["backup", "logs", "done"]);
    answer_one(&downloads, json!({"phase": "Processed", "downloadURL": link})).await;
    let stdout = succeeded(logs.wait_with_output().await.unwrap());
    assert!(stdout.contains("read over http"), "{stdout}");

    let results = gzip_file(
        &env,
        "done-results.json.gz",
        br#"{"counts": {"configmaps": 3}, "warnings": [{"reason": "a type was skipped"}], "errors": []}"#,
    );
    let list = gzip_file(&env, "done-resource-list.json.gz", br#"{"v1/ConfigMap": ["shop/a", "shop/b", "shop/c"]}"#);
    let details = spawn_cairn(&env, &ns, &["backup", "describe", "done", "--details", "-o", "json"]);
    let first = answer_one(&downloads, json!({"phase": "Processed", "downloadURL": results})).await;
    assert_eq!(first.spec.target.kind, DownloadTargetKind::BackupResults);
    let second = answer_one(&downloads, json!({"phase": "Processed", "downloadURL": list})).await;
    assert_eq!(second.spec.target.kind, DownloadTargetKind::BackupResourceList);
    let report = json_of(&succeeded(details.wait_with_output().await.unwrap()));
    assert_eq!(report["results"]["counts"]["configmaps"], 3);
    assert_eq!(report["resourceList"]["v1/ConfigMap"][2], "shop/c");

    let refused = spawn_cairn(&env, &ns, &["backup", "logs", "done"]);
    answer_one(&downloads, json!({"phase": "Processed", "error": "the log is missing from the bucket"})).await;
    failed_with(
        refused.wait_with_output().await.unwrap(),
        &["cannot provide the BackupLog of \"done\": the log is missing from the bucket"],
    );

    let version = spawn_cairn(&env, &ns, &["version", "-o", "json"]);
    let statuses: Api<ServerStatusRequest> = Api::namespaced(client, &ns);
    let request = answer_one(&statuses, json!({"phase": "Processed", "serverVersion": "9.9.9"})).await;
    assert!(request.name_any().starts_with("cairn-"));
    let report = json_of(&succeeded(version.wait_with_output().await.unwrap()));
    assert_eq!(report["server"]["version"], "9.9.9");
    assert_eq!(report["client"]["mode"], "server");
    assert!(statuses.list(&ListParams::default()).await.unwrap().items.is_empty(), "the request was left behind");
}
