//! The real `backup-server` binary against the real control plane and S3 server: schedules, garbage
//! collection, bucket sync, read-only locations, leader election, and a server killed mid-backup.

use cairn_api::{
    AccessMode, Backup, BackupPhase, BackupSpec, BackupStorageLocation, DeleteBackupRequest, DeleteBackupRequestSpec,
    DownloadRequest, DownloadRequestSpec, DownloadTarget, DownloadTargetKind, LocationPhase, Restore,
    RestoreObjectPhase, RestoreSpec, Schedule, ScheduleSpec, SelectionSpec, ServerStatusRequest,
    ServerStatusRequestSpec, labels,
};
use cairn_tests::wait::eventually;
use std::{collections::BTreeMap, time::Duration};

use backup_core::{
    backup::{list_backup_names, read_backup, verify_backup},
    store::Store,
};
use cairn_tests::{
    TestEnv,
    server::{ServerProcess, create_s3_location, install_crds, service_account_kubeconfig},
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::ConfigMap};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};

const SERVER: &str = env!("CARGO_BIN_EXE_backup-server");

/// A server namespace with the CRDs, an S3 location `main` under a fresh prefix, and a workload namespace
/// with a few ConfigMaps.
struct Setup {
    env: TestEnv,
    client: Client,
    namespace: String,
    workload: String,
    prefix: String,
}

impl Setup {
    async fn new(base: &str) -> Setup {
        let env = TestEnv::get();
        let client = env.client().await;
        install_crds(&client).await;
        let namespace = env.namespace(&format!("{base}-server")).await;
        let workload = env.namespace(&format!("{base}-app")).await;
        let prefix = env.bucket_prefix(base);
        create_s3_location(&client, &env, &namespace, "main", &prefix, AccessMode::ReadWrite).await;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &workload);
        for i in 0..3 {
            let map = ConfigMap {
                metadata: ObjectMeta { name: Some(format!("settings-{i}")), ..Default::default() },
                data: Some(BTreeMap::from([("value".to_owned(), i.to_string())])),
                ..Default::default()
            };
            maps.create(&PostParams::default(), &map).await.unwrap();
        }
        Setup { env, client, namespace, workload, prefix }
    }

    fn server(&self, identity: &str, extra: &[&str]) -> ServerProcess {
        let mut args = vec!["--backup-sync-period", "1s", "--store-validation-frequency", "1s"];
        args.extend_from_slice(extra);
        ServerProcess::start(SERVER.as_ref(), &self.env, &self.namespace, identity, &args)
            .unwrap_or_else(|e| panic!("starting backup-server: {e}"))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn store(&self) -> Store {
        self.env.s3_store(&self.prefix)
    }

    fn backup_spec(&self, ttl: &str) -> BackupSpec {
        BackupSpec {
            selection: SelectionSpec { included_namespaces: vec![self.workload.clone()], ..Default::default() },
            ttl: ttl.into(),
            ..Default::default()
        }
    }

    async fn create_backup(&self, name: &str, ttl: &str) {
        self.api::<Backup>().create(&PostParams::default(), &Backup::new(name, self.backup_spec(ttl))).await.unwrap();
    }

    /// Waits until backup `name` leaves New and InProgress; returns it.
    async fn finished(&self, name: &str, server: &ServerProcess) -> Backup {
        let api = self.api::<Backup>();
        eventually(Duration::from_secs(60), &format!("backup {name} to finish; server log:\n{}", server.tail()), || {
            let api = api.clone();
            async move { api.get_opt(name).await.unwrap().filter(|b| !b.phase().is_active()) }
        })
        .await
    }
}

#[tokio::test]
async fn a_backup_object_runs_completes_and_restores_into_a_mapped_namespace() {
    let setup = Setup::new("srv-run").await;
    let server = setup.server("solo", &["--log-format", "json"]);
    setup.create_backup("first", "1h").await;
    let backup = setup.finished("first", &server).await;
    let status = backup.status.clone().unwrap();
    assert_eq!(backup.phase(), BackupPhase::Completed, "{status:?}\n{}", server.tail());
    assert_eq!(backup.spec.storage_location, "main", "an empty location means the default one");
    assert_eq!(backup.labels().get(labels::STORAGE_LOCATION).map(String::as_str), Some("main"));
    assert!(status.expiration.is_some() && status.progress.unwrap().items_backed_up >= 3);
    assert!(verify_backup(&setup.store(), "first").await.unwrap().is_sound());
    assert_eq!(server.http_get("/healthz").0, 200);
    assert_eq!(server.http_get("/readyz").0, 200);
    let (code, metrics) = server.http_get("/metrics");
    assert_eq!(code, 200);
    for line in ["cairn_backup_attempt_total{schedule=\"\"} 1", "cairn_backup_success_total{schedule=\"\"} 1"] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains("cairn_backup_duration_seconds_bucket"), "{metrics}");
    // Structured logs: one JSON object per line, with the backup as a field.
    // (Only whole lines: the server may be writing the last one while the test reads.)
    let log = server.log();
    let events: Vec<serde_json::Value> = log
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.iter().any(|e| e["message"] == "backup finished" && e["backup"] == "first"), "{events:?}");

    let target = setup.env.unique_name("srv-run-copy");
    let spec = RestoreSpec {
        backup_name: "first".into(),
        namespace_mapping: [(setup.workload.clone(), target.clone())].into(),
        ..Default::default()
    };
    setup.api::<Restore>().create(&PostParams::default(), &Restore::new("first-copy", spec)).await.unwrap();
    let restores = setup.api::<Restore>();
    let restore = eventually(Duration::from_secs(60), "the restore to finish", || {
        let restores = restores.clone();
        async move {
            restores
                .get_opt("first-copy")
                .await
                .unwrap()
                .filter(|r| !matches!(r.phase(), RestoreObjectPhase::New | RestoreObjectPhase::InProgress))
        }
    })
    .await;
    assert_eq!(restore.phase(), RestoreObjectPhase::Completed, "{:?}\n{}", restore.status, server.tail());
    let copied: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &target);
    assert_eq!(copied.get("settings-2").await.unwrap().data.unwrap()["value"], "2");

    // The CLI's questions: the server's version, and a link to the backup's log.
    let requests = setup.api::<ServerStatusRequest>();
    let request = ServerStatusRequest::new("version", ServerStatusRequestSpec {});
    requests.create(&PostParams::default(), &request).await.unwrap();
    let version = eventually(Duration::from_secs(10), "the server status answer", || {
        let requests = requests.clone();
        async move { requests.get("version").await.unwrap().status.and_then(|s| s.server_version) }
    })
    .await;
    assert_eq!(version, backup_core::VERSION);
    let downloads = setup.api::<DownloadRequest>();
    let target = DownloadTarget { kind: DownloadTargetKind::BackupLog, name: "first".into() };
    downloads
        .create(&PostParams::default(), &DownloadRequest::new("first-log", DownloadRequestSpec { target }))
        .await
        .unwrap();
    let url = eventually(Duration::from_secs(10), "the download link", || {
        let downloads = downloads.clone();
        async move { downloads.get("first-log").await.unwrap().status.and_then(|s| s.download_url) }
    })
    .await;
    assert!(url.starts_with(&setup.env.info().s3_endpoint) && url.contains("X-Amz-Signature"), "{url}");
}

#[tokio::test]
async fn a_schedule_every_five_seconds_makes_backups_that_never_overlap() {
    let setup = Setup::new("srv-sched").await;
    let server = setup.server("solo", &[]);
    let spec = ScheduleSpec { schedule: "@every 5s".into(), template: setup.backup_spec("1h"), ..Default::default() };
    setup.api::<Schedule>().create(&PostParams::default(), &Schedule::new("often", spec)).await.unwrap();
    let backups = setup.api::<Backup>();
    let selector = format!("{}=often", labels::SCHEDULE_NAME);
    let made =
        eventually(Duration::from_secs(40), &format!("three finished scheduled backups\n{}", server.tail()), || {
            let (backups, selector) = (backups.clone(), selector.clone());
            async move {
                let items = backups.list(&ListParams::default().labels(&selector)).await.unwrap().items;
                let finished: Vec<Backup> = items.into_iter().filter(|b| !b.phase().is_active()).collect();
                (finished.len() >= 3).then_some(finished)
            }
        })
        .await;
    let mut spans = Vec::new();
    for backup in &made {
        assert_eq!(backup.phase(), BackupPhase::Completed, "{:?}", backup.status);
        let suffix = backup.name_any().strip_prefix("often-").map(str::to_owned).unwrap_or_default();
        assert!(suffix.len() == 14 && suffix.chars().all(|c| c.is_ascii_digit()), "{}", backup.name_any());
        let status = backup.status.clone().unwrap();
        spans.push((backup.creation_timestamp().unwrap().0, status.completion_timestamp.unwrap().0));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "a backup was created while the previous one ran: {pair:?}");
        // The API stores times in whole seconds, so "5 s apart" shows as 4 to 6.
        assert!(pair[1].0.duration_since(pair[0].0) >= jiff::SignedDuration::from_secs(4), "{pair:?}");
    }
    let status = setup.api::<Schedule>().get("often").await.unwrap().status.unwrap();
    assert!(status.last_backup.is_some());

    // A schedule told to own its backups: it fires at once (it never ran) and owns what it made; with
    // skipImmediately it waits for its first firing instead.
    let owned = ScheduleSpec {
        schedule: "@every 1h".into(),
        template: setup.backup_spec("1h"),
        use_owner_references_in_backup: Some(true),
        ..Default::default()
    };
    setup.api::<Schedule>().create(&PostParams::default(), &Schedule::new("owner", owned.clone())).await.unwrap();
    let waiting = ScheduleSpec { skip_immediately: Some(true), use_owner_references_in_backup: None, ..owned };
    setup.api::<Schedule>().create(&PostParams::default(), &Schedule::new("patient", waiting)).await.unwrap();
    let owned_backup = eventually(Duration::from_secs(20), "the owner schedule's backup", || {
        let backups = backups.clone();
        async move {
            let selector = format!("{}=owner", labels::SCHEDULE_NAME);
            backups.list(&ListParams::default().labels(&selector)).await.unwrap().items.into_iter().next()
        }
    })
    .await;
    let owner = &owned_backup.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Schedule", "owner"));
    let schedules = setup.api::<Schedule>();
    eventually(Duration::from_secs(20), "the patient schedule to be enabled", || {
        let schedules = schedules.clone();
        async move { schedules.get("patient").await.unwrap().status.filter(|s| s.phase.is_some()) }
    })
    .await;
    let patient = format!("{}=patient", labels::SCHEDULE_NAME);
    assert!(backups.list(&ListParams::default().labels(&patient)).await.unwrap().items.is_empty());

    // Paused: no more backups.
    let patch = serde_json::json!({ "spec": { "paused": true } });
    setup.api::<Schedule>().patch("often", &Default::default(), &kube::api::Patch::Merge(patch)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = backups.list(&ListParams::default().labels(&selector)).await.unwrap().items.len();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = backups.list(&ListParams::default().labels(&selector)).await.unwrap().items.len();
    assert_eq!(before, after, "a paused schedule created a backup");
}

#[tokio::test]
async fn an_invalid_schedule_is_refused_at_admission_or_marked_failed_validation() {
    let setup = Setup::new("srv-badcron").await;
    let schedules = setup.api::<Schedule>();
    let refused =
        ScheduleSpec { schedule: "every day".into(), template: setup.backup_spec("1h"), ..Default::default() };
    let error = schedules.create(&PostParams::default(), &Schedule::new("words", refused)).await.unwrap_err();
    assert!(error.to_string().contains("spec.schedule"), "{error}");
    let bad_ttl = BackupSpec { ttl: "forever".into(), ..setup.backup_spec("1h") };
    let error = setup.api::<Backup>().create(&PostParams::default(), &Backup::new("ttl", bad_ttl)).await.unwrap_err();
    assert!(error.to_string().contains("spec.ttl"), "{error}");

    let server = setup.server("solo", &[]);
    let out_of_range =
        ScheduleSpec { schedule: "61 * * * *".into(), template: setup.backup_spec("1h"), ..Default::default() };
    schedules.create(&PostParams::default(), &Schedule::new("minute61", out_of_range)).await.unwrap();
    let status = eventually(Duration::from_secs(20), &format!("FailedValidation\n{}", server.tail()), || {
        let schedules = schedules.clone();
        async move { schedules.get("minute61").await.unwrap().status.filter(|s| !s.validation_errors.is_empty()) }
    })
    .await;
    assert_eq!(status.phase, Some(cairn_api::SchedulePhase::FailedValidation));
    assert!(status.validation_errors[0].contains("61"), "{:?}", status.validation_errors);

    // Locations: an unknown provider is refused at admission; a spec the schema cannot judge is Unavailable
    // with the reason.
    let locations = setup.api::<BackupStorageLocation>();
    let mut spec = locations.get("main").await.unwrap().spec;
    spec.provider = "gcp".into();
    let error =
        locations.create(&PostParams::default(), &BackupStorageLocation::new("gcs", spec.clone())).await.unwrap_err();
    assert!(error.to_string().contains("spec.provider"), "{error}");
    spec.provider = "local".into();
    spec.object_storage.bucket = "relative/dir".into();
    spec.default = false;
    locations.create(&PostParams::default(), &BackupStorageLocation::new("relative", spec)).await.unwrap();
    let status = eventually(Duration::from_secs(20), "the location to be judged", || {
        let locations = locations.clone();
        async move { locations.get("relative").await.unwrap().status.filter(|s| s.phase.is_some()) }
    })
    .await;
    assert_eq!(status.phase, Some(LocationPhase::Unavailable));
    assert!(status.message.unwrap().contains("absolute directory"));
    // Nothing was lost: the valid location still serves.
    setup.create_backup("still-fine", "1h").await;
    let spec_named = |name: &str| BackupSpec { storage_location: name.into(), ..setup.backup_spec("1h") };
    setup.api::<Backup>().create(&PostParams::default(), &Backup::new("to-bad", spec_named("relative"))).await.unwrap();
    assert_eq!(setup.finished("still-fine", &server).await.phase(), BackupPhase::Completed);
    let bad = setup.finished("to-bad", &server).await;
    assert_eq!(bad.phase(), BackupPhase::FailedValidation, "{:?}", bad.status);
    assert!(bad.status.unwrap().expiration.is_some(), "FailedValidation backups expire too");
}

#[tokio::test]
async fn bad_objects_end_failed_validation_and_never_stop_the_server() {
    let setup = Setup::new("srv-badinput").await;
    let backups = setup.api::<Backup>();
    // Past what the schema lets through: refused at admission.
    let absurd = BackupSpec { ttl: "99999999h".into(), ..setup.backup_spec("1h") };
    let error = backups.create(&PostParams::default(), &Backup::new("absurd", absurd)).await.unwrap_err();
    assert!(error.to_string().contains("spec.ttl"), "{error}");
    // Through the schema, past Go's longest duration: FailedValidation, and the server carries on.
    let server = setup.server("solo", &[]);
    setup.create_backup("huge-ttl", "9999999h").await;
    let huge = setup.finished("huge-ttl", &server).await;
    assert_eq!(huge.phase(), BackupPhase::FailedValidation, "{:?}", huge.status);
    let errors = huge.status.unwrap().validation_errors;
    assert!(errors[0].contains("longer than the longest duration"), "{errors:?}");
    // A TTL of 0 is the server's default (720h), as in Velero.
    setup.create_backup("zero-ttl", "0s").await;
    let zero = setup.finished("zero-ttl", &server).await;
    assert_eq!(zero.phase(), BackupPhase::Completed, "{:?}\n{}", zero.status, server.tail());
    let expiration = zero.status.unwrap().expiration.unwrap().0;
    let left = expiration.duration_since(jiff::Timestamp::now());
    assert!(left > jiff::SignedDuration::from_hours(719), "expires in {left:?}");
    assert_eq!(zero.spec.ttl, "720h0m0s");

    // Credentials in an endpoint are refused, and never shown in a status or a failure reason.
    let locations = setup.api::<BackupStorageLocation>();
    let mut spec = locations.get("main").await.unwrap().spec;
    spec.config.insert("s3Url".into(), "http://KEY:s3cr3tV4lue@127.0.0.1:9".into());
    spec.default = false;
    locations.create(&PostParams::default(), &BackupStorageLocation::new("leaky", spec)).await.unwrap();
    let status = eventually(Duration::from_secs(20), "the location to be judged", || {
        let locations = locations.clone();
        async move { locations.get("leaky").await.unwrap().status.filter(|s| s.phase.is_some()) }
    })
    .await;
    assert_eq!(status.phase, Some(LocationPhase::Unavailable));
    let message = status.message.unwrap();
    assert!(message.contains("carries credentials") && !message.contains("s3cr3tV4lue"), "{message}");
    let named = BackupSpec { storage_location: "leaky".into(), ..setup.backup_spec("1h") };
    backups.create(&PostParams::default(), &Backup::new("to-leaky", named)).await.unwrap();
    let refused = setup.finished("to-leaky", &server).await;
    let reasons = format!("{:?}", refused.status);
    assert!(!reasons.contains("s3cr3tV4lue"), "{reasons}");
    assert!(!server.log().contains("s3cr3tV4lue"), "the secret is in the server's log");
    assert!(server.pid().is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()));
}

#[tokio::test]
async fn an_expired_backup_is_collected_with_its_stored_data() {
    let setup = Setup::new("srv-gc").await;
    let server = setup.server("solo", &["--garbage-collection-frequency", "2s"]);
    setup.create_backup("short-lived", "2s").await;
    let backup = setup.finished("short-lived", &server).await;
    assert_eq!(backup.phase(), BackupPhase::Completed);
    let api = setup.api::<Backup>();
    eventually(Duration::from_secs(30), &format!("the backup object to go\n{}", server.tail()), || {
        let api = api.clone();
        async move { api.get_opt("short-lived").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(list_backup_names(&setup.store()).await.unwrap().is_empty(), "stored data remains");
    let requests = setup.api::<DeleteBackupRequest>().list(&Default::default()).await.unwrap().items;
    let request = requests.iter().find(|r| r.spec.backup_name == "short-lived").expect("GC made a request");
    assert!(request.status.as_ref().unwrap().errors.is_empty(), "{:?}", request.status);

    // A request made for another backup of the same name (its uid differs) deletes nothing.
    setup.create_backup("reborn", "1h").await;
    assert_eq!(setup.finished("reborn", &server).await.phase(), BackupPhase::Completed);
    let mut stale = DeleteBackupRequest::new("stale", DeleteBackupRequestSpec { backup_name: "reborn".into() });
    stale.metadata.labels = Some([(labels::BACKUP_UID.to_owned(), "an-older-uid".to_owned())].into());
    let requests = setup.api::<DeleteBackupRequest>();
    requests.create(&PostParams::default(), &stale).await.unwrap();
    let errors = eventually(Duration::from_secs(20), "the stale request to be processed", || {
        let requests = requests.clone();
        async move {
            let status = requests.get("stale").await.unwrap().status?;
            (status.phase == Some(cairn_api::RequestPhase::Processed)).then_some(status.errors)
        }
    })
    .await;
    assert!(errors.iter().any(|e| e.contains("not the one")), "{errors:?}");
    assert_eq!(api.get("reborn").await.unwrap().phase(), BackupPhase::Completed);
    assert!(read_backup(&setup.store(), "reborn").await.unwrap().is_some());
}

#[tokio::test]
async fn backups_appear_through_sync_in_another_cluster_and_vanish_when_their_data_is_gone() {
    let setup = Setup::new("srv-sync").await;
    let first = setup.server("first", &[]);
    // "Another cluster": a second server with its own namespace and location on the same bucket prefix.
    let other_namespace = setup.env.namespace("srv-sync-other").await;
    create_s3_location(&setup.client, &setup.env, &other_namespace, "mirror", &setup.prefix, AccessMode::ReadWrite)
        .await;
    // The second server syncs hourly by default; the location's own backupSyncPeriod (1s) overrides that.
    let own_period = serde_json::json!({ "spec": { "backupSyncPeriod": "1s" } });
    Api::<BackupStorageLocation>::namespaced(setup.client.clone(), &other_namespace)
        .patch("mirror", &Default::default(), &kube::api::Patch::Merge(own_period))
        .await
        .unwrap();
    let second = ServerProcess::start(
        SERVER.as_ref(),
        &setup.env,
        &other_namespace,
        "second",
        &["--backup-sync-period", "1h", "--store-validation-frequency", "1s"],
    )
    .unwrap();
    setup.create_backup("shared", "1h").await;
    assert_eq!(setup.finished("shared", &first).await.phase(), BackupPhase::Completed);

    let mirrored: Api<Backup> = Api::namespaced(setup.client.clone(), &other_namespace);
    let seen =
        eventually(Duration::from_secs(20), &format!("the backup in the other namespace\n{}", second.tail()), || {
            let mirrored = mirrored.clone();
            async move { mirrored.get_opt("shared").await.unwrap().filter(|b| b.phase() == BackupPhase::Completed) }
        })
        .await;
    assert_eq!(seen.spec.storage_location, "mirror", "synced backups point at the local location");
    let status = seen.status.unwrap();
    assert!(status.progress.unwrap().items_backed_up >= 3 && status.expiration.is_some());
    let locations: Api<BackupStorageLocation> = Api::namespaced(setup.client.clone(), &other_namespace);
    let location = locations.get("mirror").await.unwrap().status.unwrap();
    assert_eq!(location.phase, Some(LocationPhase::Available));
    assert!(location.last_synced_time.is_some());

    // The data goes from the bucket: both clusters drop the object, and nothing else.
    setup.store().delete_backup("shared").await.unwrap();
    for api in [mirrored, setup.api::<Backup>()] {
        eventually(Duration::from_secs(20), "the object to disappear", || {
            let api = api.clone();
            async move { api.get_opt("shared").await.unwrap().is_none().then_some(()) }
        })
        .await;
    }
}

#[tokio::test]
async fn a_read_only_location_refuses_backups_and_deletions_but_serves_restores() {
    let setup = Setup::new("srv-ro").await;
    let server = setup.server("solo", &["--garbage-collection-frequency", "1s"]);
    setup.create_backup("before", "1h").await;
    assert_eq!(setup.finished("before", &server).await.phase(), BackupPhase::Completed);
    let patch = serde_json::json!({ "spec": { "accessMode": "ReadOnly" } });
    setup
        .api::<BackupStorageLocation>()
        .patch("main", &Default::default(), &kube::api::Patch::Merge(patch))
        .await
        .unwrap();

    setup.create_backup("refused", "1h").await;
    let refused = setup.finished("refused", &server).await;
    assert_eq!(refused.phase(), BackupPhase::FailedValidation);
    let reason = &refused.status.unwrap().validation_errors[0];
    assert!(reason.contains("ReadOnly") && reason.contains("--access-mode ReadWrite"), "{reason}");
    assert!(read_backup(&setup.store(), "refused").await.unwrap().is_none(), "nothing was written");

    // Expired while its location is ReadOnly: garbage collection keeps it and says why.
    let backups = setup.api::<Backup>();
    let past = serde_json::json!({ "status": { "expiration": "2020-01-01T00:00:00Z" } });
    backups.patch_status("before", &Default::default(), &kube::api::Patch::Merge(past)).await.unwrap();
    let label = eventually(Duration::from_secs(20), &format!("the gc-failure label\n{}", server.tail()), || {
        let backups = backups.clone();
        async move { backups.get("before").await.unwrap().labels().get(labels::GC_FAILURE).cloned() }
    })
    .await;
    assert_eq!(label, labels::GC_LOCATION_READ_ONLY);

    let requests = setup.api::<DeleteBackupRequest>();
    let request = DeleteBackupRequest::new("delete-before", DeleteBackupRequestSpec { backup_name: "before".into() });
    requests.create(&PostParams::default(), &request).await.unwrap();
    let errors = eventually(Duration::from_secs(20), "the deletion to be processed", || {
        let requests = requests.clone();
        async move {
            let status = requests.get("delete-before").await.unwrap().status?;
            (status.phase == Some(cairn_api::RequestPhase::Processed)).then_some(status.errors)
        }
    })
    .await;
    assert!(errors.iter().any(|e| e.contains("ReadOnly")), "{errors:?}");
    assert!(read_backup(&setup.store(), "before").await.unwrap().is_some(), "the stored backup is untouched");

    let restores = setup.api::<Restore>();
    let spec = RestoreSpec {
        backup_name: "before".into(),
        namespace_mapping: [(setup.workload.clone(), setup.env.unique_name("srv-ro-copy"))].into(),
        ..Default::default()
    };
    restores.create(&PostParams::default(), &Restore::new("from-read-only", spec)).await.unwrap();
    let restore = eventually(Duration::from_secs(60), "the restore", || {
        let restores = restores.clone();
        async move {
            restores.get("from-read-only").await.unwrap().status.filter(|s| {
                !matches!(s.phase, None | Some(RestoreObjectPhase::New) | Some(RestoreObjectPhase::InProgress))
            })
        }
    })
    .await;
    assert_eq!(restore.phase, Some(RestoreObjectPhase::Completed), "{restore:?}");

    // Its location gone: garbage collection keeps it, labelled BSLNotFound.
    setup.api::<BackupStorageLocation>().delete("main", &Default::default()).await.unwrap();
    let label = eventually(Duration::from_secs(20), "the BSLNotFound label", || {
        let backups = backups.clone();
        async move {
            let label = backups.get("before").await.unwrap().labels().get(labels::GC_FAILURE).cloned();
            label.filter(|l| l == labels::GC_LOCATION_NOT_FOUND)
        }
    })
    .await;
    assert_eq!(label, labels::GC_LOCATION_NOT_FOUND);
    assert!(read_backup(&setup.store(), "before").await.unwrap().is_some(), "the stored backup is untouched");

    // Its location back, but naming a Secret that does not exist: BSLCannotGet.
    create_s3_location(&setup.client, &setup.env, &setup.namespace, "main", &setup.prefix, AccessMode::ReadWrite).await;
    let broken = serde_json::json!({ "spec": { "credential": { "name": "no-such-secret", "key": "cloud" } } });
    setup
        .api::<BackupStorageLocation>()
        .patch("main", &Default::default(), &kube::api::Patch::Merge(broken))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the BSLCannotGet label", || {
        let backups = backups.clone();
        async move {
            let label = backups.get("before").await.unwrap().labels().get(labels::GC_FAILURE).cloned();
            label.filter(|l| l == labels::GC_LOCATION_UNREACHABLE)
        }
    })
    .await;
    assert!(read_backup(&setup.store(), "before").await.unwrap().is_some(), "the stored backup is untouched");
}

#[tokio::test]
async fn with_two_replicas_only_the_lease_holder_acts_and_a_standby_takes_over() {
    let setup = Setup::new("srv-lead").await;
    // Short enough that the standby takes over within the test, long enough that a slow etcd write on a
    // loaded machine does not cost the leader its Lease.
    let lease_flags = ["--leader-lease-duration", "8s"];
    let mut first = setup.server("replica-a", &lease_flags);
    let leases: Api<Lease> = setup.api();
    eventually(Duration::from_secs(15), "replica-a to hold the Lease", || {
        let leases = leases.clone();
        async move {
            let lease = leases.get_opt("cairn-server").await.unwrap()?;
            (lease.spec?.holder_identity? == "replica-a").then_some(())
        }
    })
    .await;
    let second = setup.server("replica-b", &lease_flags);
    setup.create_backup("while-a-leads", "1h").await;
    assert_eq!(setup.finished("while-a-leads", &first).await.phase(), BackupPhase::Completed);
    assert!(first.log().contains("backup starting"), "{}", first.tail());
    assert!(!second.log().contains("backup starting"), "the standby acted:\n{}", second.tail());
    assert!(!second.log().contains("starting the controllers"), "{}", second.tail());

    let lease = leases.get("cairn-server").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-a"), "the Lease changed hands while a was alive");
    first.kill();
    setup.create_backup("after-a-died", "1h").await;
    assert_eq!(setup.finished("after-a-died", &second).await.phase(), BackupPhase::Completed, "{}", second.tail());
    assert!(second.log().contains("backup starting"), "{}", second.tail());
}

#[tokio::test]
async fn killing_the_server_mid_backup_never_leaves_a_completed_backup_with_missing_data() {
    let setup = Setup::new("srv-kill").await;
    // Enough data that the backup takes a while: 400 ConfigMaps of 64 KiB that do not compress.
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.workload);
    let blob: String = (0..64 * 1024).map(|i| char::from(b'a' + ((i * 7919 + i / 13) % 26) as u8)).collect();
    futures::future::join_all((0..400).map(|i| {
        let (maps, blob) = (maps.clone(), blob.clone());
        async move {
            let map = ConfigMap {
                metadata: ObjectMeta { name: Some(format!("bulk-{i}")), ..Default::default() },
                data: Some(BTreeMap::from([("blob".to_owned(), blob)])),
                ..Default::default()
            };
            maps.create(&PostParams::default(), &map).await.unwrap();
        }
    }))
    .await;
    // A short Lease, so that each successor takes over within seconds of a kill.
    let lease = ["--leader-lease-duration", "4s"];
    let mut server = setup.server("doomed", &lease);
    setup.create_backup("interrupted", "1h").await;
    let api = setup.api::<Backup>();
    eventually(Duration::from_secs(30), "the backup to start", || {
        let api = api.clone();
        async move { api.get("interrupted").await.unwrap().status.filter(|s| s.phase == Some(BackupPhase::InProgress)) }
    })
    .await;
    server.kill();
    let recorded_before_kill = read_backup(&setup.store(), "interrupted").await.unwrap().is_some();

    let mut successor = setup.server("successor", &lease);
    let backup = setup.finished("interrupted", &successor).await;
    let store = setup.store();
    match backup.phase() {
        BackupPhase::Failed => {
            let reason = backup.status.unwrap().failure_reason.unwrap();
            assert!(reason.contains("server stopped"), "{reason}");
            assert!(read_backup(&store, "interrupted").await.unwrap().is_none(), "a Failed backup has no record");
        }
        BackupPhase::Completed => {
            assert!(recorded_before_kill, "Completed without a record written before the kill");
            assert!(verify_backup(&store, "interrupted").await.unwrap().is_sound());
        }
        other => panic!("unexpected phase {other:?}"),
    }
    assert!(!recorded_before_kill, "the backup finished before the kill; the test needs more data");

    // The same for a restore: a complete backup, a restore of it killed while InProgress, then a new server.
    setup.create_backup("whole", "1h").await;
    assert_eq!(setup.finished("whole", &successor).await.phase(), BackupPhase::Completed);
    let spec = RestoreSpec {
        backup_name: "whole".into(),
        namespace_mapping: [(setup.workload.clone(), setup.env.unique_name("srv-kill-copy"))].into(),
        ..Default::default()
    };
    let restores = setup.api::<Restore>();
    restores.create(&PostParams::default(), &Restore::new("cut-short", spec)).await.unwrap();
    eventually(Duration::from_secs(30), "the restore to start", || {
        let restores = restores.clone();
        async move {
            let status = restores.get("cut-short").await.unwrap().status?;
            (status.phase == Some(RestoreObjectPhase::InProgress)).then_some(())
        }
    })
    .await;
    successor.kill();
    let third = setup.server("third", &lease);
    let status = eventually(Duration::from_secs(60), &format!("the restore to be settled\n{}", third.tail()), || {
        let restores = restores.clone();
        async move {
            restores.get("cut-short").await.unwrap().status.filter(|s| {
                matches!(
                    s.phase,
                    Some(
                        RestoreObjectPhase::Failed
                            | RestoreObjectPhase::Completed
                            | RestoreObjectPhase::PartiallyFailed
                    )
                )
            })
        }
    })
    .await;
    eprintln!("the interrupted restore ended {:?}: {:?}", status.phase, status.failure_reason);
    if status.phase == Some(RestoreObjectPhase::Failed) {
        assert!(status.failure_reason.unwrap().contains("server stopped"));
    } else {
        // It had finished and stored its record before the kill: adopted from that record, with its counts.
        assert!(status.progress.unwrap().total_items > 0);
    }
}

#[tokio::test]
async fn the_installed_rbac_is_enough_to_back_up_and_restore() {
    let setup = Setup::new("srv-rbac").await;
    let options = backup_core::install::InstallOptions {
        namespace: setup.namespace.clone(),
        default_location: None,
        ..Default::default()
    };
    let manifests = backup_core::install::manifests(&options).unwrap();
    backup_core::install::apply(&setup.client, &manifests, |_| {}).await.unwrap();
    let kubeconfig = service_account_kubeconfig(&setup.env, &setup.client, &setup.namespace, "cairn").await;
    let args = ["--backup-sync-period", "1s", "--store-validation-frequency", "1s"];
    let server =
        ServerProcess::start_as(SERVER.as_ref(), &setup.env, &kubeconfig, &setup.namespace, "limited", &args).unwrap();
    setup.create_backup("with-rbac", "1h").await;
    let backup = setup.finished("with-rbac", &server).await;
    assert_eq!(backup.phase(), BackupPhase::Completed, "{:?}\n{}", backup.status, server.tail());

    let target = setup.env.unique_name("srv-rbac-copy");
    let spec = RestoreSpec {
        backup_name: "with-rbac".into(),
        namespace_mapping: [(setup.workload.clone(), target.clone())].into(),
        ..Default::default()
    };
    let restores = setup.api::<Restore>();
    restores.create(&PostParams::default(), &Restore::new("with-rbac", spec)).await.unwrap();
    let status = eventually(Duration::from_secs(60), "the restore", || {
        let restores = restores.clone();
        async move {
            restores.get("with-rbac").await.unwrap().status.filter(|s| {
                !matches!(s.phase, None | Some(RestoreObjectPhase::New) | Some(RestoreObjectPhase::InProgress))
            })
        }
    })
    .await;
    assert_eq!(status.phase, Some(RestoreObjectPhase::Completed), "{status:?}\n{}", server.tail());
    let copied: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &target);
    assert!(copied.get_opt("settings-0").await.unwrap().is_some());
    // What RBAC does not grant stays refused: the server's account cannot delete a workload object.
    let limited = cairn_tests::shared::client_from(&kubeconfig).await.unwrap();
    let error =
        Api::<ConfigMap>::namespaced(limited, &target).delete("settings-0", &Default::default()).await.unwrap_err();
    assert!(error.to_string().contains("forbidden"), "{error}");
}
