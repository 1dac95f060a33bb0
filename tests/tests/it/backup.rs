//! Backups against the real control plane and S3 server: layout and content, selection, custom resources,
//! Velero's gzip format, integrity, and failures that must never look Completed.

use cairn_api::Compression;
use cairn_api::SelectionSpec;
use std::collections::{BTreeMap, BTreeSet};

use backup_core::{
    archive::{item_path, preferred_version_path},
    backup::{BackupError, BackupOutcome, BackupProgress, BackupRequest, BackupSpec, Phase, run_backup, verify_backup},
    selection::parse_label_selector,
    store::Store,
};
use cairn_kube::discovery::Discovery;
use cairn_tests::{
    TestEnv,
    apply::{SAMPLE_WORKLOADS, apply_manifests},
    archive_read::archive_entries,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ObjectMeta, PostParams},
};
use tokio::sync::watch;

fn request(name: &str, selection: SelectionSpec, compression: Compression) -> BackupRequest {
    BackupRequest {
        name: name.to_owned(),
        spec: BackupSpec {
            selection,
            ttl: "1h".into(),
            storage_location: String::new(),
            compression: Some(compression),
            hooks: Default::default(),
            format: None,
        },
        labels: BTreeMap::new(),
    }
}

async fn backup(client: &Client, store: &Store, request: BackupRequest) -> Result<BackupOutcome, BackupError> {
    let (progress, _) = watch::channel(BackupProgress::default());
    run_backup(client, store, request, &progress).await
}

fn in_namespaces(namespaces: &[&str]) -> SelectionSpec {
    SelectionSpec { included_namespaces: namespaces.iter().map(|n| n.to_string()).collect(), ..Default::default() }
}

/// A namespace loaded with the seed's sample workloads.
async fn sample_namespace(env: &TestEnv, base: &str) -> (Client, String) {
    let client = env.client().await;
    let namespace = env.namespace(base).await;
    apply_manifests(&client, &SAMPLE_WORKLOADS.replace("NAMESPACE", &namespace)).await.expect("the samples apply");
    (client, namespace)
}

/// `"ns/name"` entries per `apiVersion/Kind` from the backup's resource list, flattened to
/// `"apiVersion/Kind ns/name"`.
async fn saved(store: &Store, outcome: &BackupOutcome) -> BTreeSet<String> {
    let list = backup_core::backup::read_resource_list(store, &outcome.record).await.unwrap();
    list.into_iter().flat_map(|(kind, names)| names.into_iter().map(move |n| format!("{kind} {n}"))).collect()
}

#[tokio::test]
async fn every_object_appears_once_at_its_layout_path_with_its_preferred_version_json() {
    let env = TestEnv::get();
    let (client, namespace) = sample_namespace(&env, "backup-layout").await;
    let store = env.s3_store(&env.bucket_prefix("backup-layout"));
    let outcome =
        backup(&client, &store, request("layout", in_namespaces(&[&namespace]), Compression::Zstd)).await.unwrap();
    assert_eq!(outcome.record.status.phase, Phase::Completed, "{:?}", outcome.results);

    let entries = archive_entries(&store, &outcome.record).await;
    assert_eq!(entries[0], ("metadata/version".to_owned(), b"1.1.0\n".to_vec()));
    let mut seen = BTreeMap::new();
    for (path, _) in &entries {
        *seen.entry(path.clone()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "duplicate archive paths");
    let by_path: BTreeMap<_, _> = entries.into_iter().collect();

    // Every object of every selected type in the namespace, as the server lists it now.
    let discovery = Discovery::run(&client).await.unwrap();
    let mut checked = 0;
    for resource_type in discovery.types.iter().filter(|t| t.namespaced) {
        if resource_type.resource == "events" {
            continue; // events come and go while the test runs
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource_type.api_resource());
        for live in api.list(&Default::default()).await.unwrap() {
            let name = live.metadata.name.clone().unwrap();
            let group_resource = resource_type.group_resource();
            let path = item_path(&group_resource, Some(&namespace), &name);
            let json = by_path.get(&path).unwrap_or_else(|| panic!("{path} missing from the archive"));
            let stored: serde_json::Value = serde_json::from_slice(json).unwrap();
            assert_eq!(stored["apiVersion"], resource_type.api_version(), "{path}");
            assert_eq!(stored["kind"], resource_type.kind.as_str(), "{path}");
            assert_eq!(stored["metadata"]["uid"].as_str(), live.metadata.uid.as_deref(), "{path}");
            for field in ["spec", "data", "stringData", "rules", "subjects", "roleRef"] {
                if let Some(value) = live.data.get(field) {
                    assert_eq!(&stored[field], value, "{path}: {field}");
                }
            }
            let copy = preferred_version_path(&group_resource, &resource_type.version, Some(&namespace), &name);
            assert_eq!(by_path.get(&copy), Some(json), "{copy}");
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} objects checked");
    // The namespace object, and the CRD of the custom resources (a related cluster-scoped object).
    assert!(by_path.contains_key(&item_path("namespaces", None, &namespace)));
    let crd = item_path("customresourcedefinitions.apiextensions.k8s.io", None, "widgets.demo.cairn.dev");
    let crd: serde_json::Value = serde_json::from_slice(&by_path[&crd]).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    // Related cluster-scoped objects come along: the PVC's PV, the ServiceAccount's ClusterRoleBinding and
    // its ClusterRole; no other cluster-scoped object does when only some namespaces are selected.
    for (group_resource, name) in [
        ("persistentvolumes", format!("pv-{namespace}")),
        ("clusterrolebindings.rbac.authorization.k8s.io", format!("{namespace}-shop-runner-view")),
        ("clusterroles.rbac.authorization.k8s.io", "view".to_owned()),
    ] {
        assert!(by_path.contains_key(&item_path(group_resource, None, &name)), "{group_resource} {name} missing");
    }
    let cluster_scoped: BTreeSet<&str> = by_path
        .keys()
        .filter(|p| p.contains("/cluster/") && !p.contains("-preferredversion/"))
        .filter_map(|p| p.strip_prefix("resources/")?.split('/').next())
        .collect();
    assert_eq!(
        cluster_scoped,
        BTreeSet::from([
            "clusterrolebindings.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io",
            "customresourcedefinitions.apiextensions.k8s.io",
            "namespaces",
            "persistentvolumes",
        ])
    );
    assert_eq!(
        by_path.keys().filter(|p| p.starts_with("resources/clusterroles.")).count(),
        2,
        "only view and its copy"
    );
    assert_eq!(outcome.record.status.progress.items_backed_up as usize * 2 + 1, by_path.len());
}

#[tokio::test]
async fn custom_resources_are_saved_with_their_crd() {
    let env = TestEnv::get();
    let (client, namespace) = sample_namespace(&env, "backup-crd").await;
    let store = env.s3_store(&env.bucket_prefix("backup-crd"));
    let selection =
        SelectionSpec { included_resources: vec!["widgets.demo.cairn.dev".into()], ..in_namespaces(&[&namespace]) };
    let outcome = backup(&client, &store, request("widgets", selection, Compression::Zstd)).await.unwrap();
    let saved = saved(&store, &outcome).await;
    assert_eq!(
        saved,
        BTreeSet::from([
            format!("demo.cairn.dev/v1/Widget {namespace}/gear"),
            format!("demo.cairn.dev/v1/Widget {namespace}/sprocket"),
            "apiextensions.k8s.io/v1/CustomResourceDefinition widgets.demo.cairn.dev".to_owned(),
        ])
    );
}

#[tokio::test]
async fn selection_matrix_follows_velero() {
    let env = TestEnv::get();
    let (client, namespace) = sample_namespace(&env, "sel-a").await;
    // A second namespace whose label excludes it, and one object of each exclude label.
    let excluded = env.namespace("sel-b").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut ns = namespaces.get(&excluded).await.unwrap();
    ns.metadata.labels.get_or_insert_default().insert("cairn.dev/exclude-from-backup".into(), "true".into());
    namespaces.replace(&excluded, &PostParams::default(), &ns).await.unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let excluded_configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &excluded);
    excluded_configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta { name: Some("hidden".into()), ..Default::default() },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (name, label) in
        [("skip-cairn", "cairn.dev/exclude-from-backup"), ("skip-velero", "velero.io/exclude-from-backup")]
    {
        let labels = BTreeMap::from([(label.to_owned(), "true".to_owned())]);
        let object = ConfigMap {
            metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels), ..Default::default() },
            ..Default::default()
        };
        configmaps.create(&PostParams::default(), &object).await.unwrap();
    }
    // An object being deleted (held by a finalizer) is skipped.
    let held = ConfigMap {
        metadata: ObjectMeta {
            name: Some("leaving".into()),
            finalizers: Some(vec!["cairn.dev/test-hold".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    configmaps.create(&PostParams::default(), &held).await.unwrap();
    configmaps.delete("leaving", &DeleteParams::default()).await.unwrap();

    let store = env.s3_store(&env.bucket_prefix("selection"));
    let glob = "sel-*".to_owned(); // both namespaces
    let cm = |name: &str| format!("v1/ConfigMap {namespace}/{name}");
    let has_kind = |saved: &BTreeSet<String>, kind: &str| saved.iter().any(|s| s.starts_with(kind));

    type Check<'a> = Box<dyn Fn(&BTreeSet<String>) + 'a>;
    let cases: Vec<(&str, SelectionSpec, Check<'_>)> = vec![
        (
            "only-configmaps",
            SelectionSpec { included_resources: vec!["cm".into()], ..in_namespaces(&[&namespace]) },
            Box::new(|s| {
                assert!(s.iter().all(|e| e.starts_with("v1/ConfigMap ")), "{s:?}");
                assert!(s.contains(&cm("shop-config")) && s.contains(&cm("nginx-conf")));
            }),
        ),
        (
            "no-secrets-or-pods",
            SelectionSpec { excluded_resources: vec!["secrets".into(), "pod".into()], ..in_namespaces(&[&namespace]) },
            Box::new(|s| {
                assert!(!has_kind(s, "v1/Secret ") && !has_kind(s, "v1/Pod "), "{s:?}");
                assert!(has_kind(s, "apps/v1/Deployment "));
            }),
        ),
        (
            "labelled-shop",
            SelectionSpec {
                label_selector: Some(parse_label_selector("app=shop").unwrap()),
                ..in_namespaces(&[&namespace])
            },
            Box::new(|s| {
                assert!(s.contains(&cm("shop-config")) && !s.contains(&cm("nginx-conf")), "{s:?}");
                assert!(
                    s.contains(&format!("v1/Namespace {namespace}")),
                    "namespace objects of selected namespaces come along"
                );
            }),
        ),
        (
            "web-or-db",
            SelectionSpec {
                or_label_selectors: vec![
                    parse_label_selector("app=web").unwrap(),
                    parse_label_selector("app=db").unwrap(),
                ],
                ..in_namespaces(&[&namespace])
            },
            Box::new(|s| {
                assert!(s.contains(&cm("nginx-conf")) && !s.contains(&cm("shop-config")), "{s:?}");
                assert!(s.contains(&format!("apps/v1/StatefulSet {namespace}/db")));
            }),
        ),
        (
            "exclusions-by-label-and-deletion",
            SelectionSpec { included_namespaces: vec![glob.clone()], ..Default::default() },
            Box::new(|s| {
                for gone in ["skip-cairn", "skip-velero", "leaving"] {
                    assert!(!s.contains(&cm(gone)), "{gone} was saved");
                }
                assert!(!s.iter().any(|e| e.contains(&excluded)), "the excluded namespace leaked: {s:?}");
                assert!(s.contains(&cm("shop-config")));
            }),
        ),
        (
            // Matches every namespace: each type is listed once across the cluster, not per namespace.
            "broad-glob",
            SelectionSpec {
                included_namespaces: vec!["?*".into()],
                included_resources: vec!["configmaps".into()],
                ..Default::default()
            },
            Box::new(|s| {
                assert!(s.contains(&cm("shop-config")) && !s.contains(&cm("skip-cairn")), "{s:?}");
                assert!(!s.iter().any(|e| e.contains(&excluded)), "the excluded namespace leaked: {s:?}");
            }),
        ),
        (
            "no-cluster-resources",
            SelectionSpec { include_cluster_resources: Some(false), ..in_namespaces(&[&namespace]) },
            Box::new(|s| {
                assert!(!has_kind(s, "apiextensions.k8s.io/v1/CustomResourceDefinition"), "{s:?}");
                assert!(has_kind(s, "demo.cairn.dev/v1/Widget "));
            }),
        ),
        (
            "forced-cluster-resources",
            SelectionSpec { include_cluster_resources: Some(true), ..in_namespaces(&[&namespace]) },
            Box::new(|s| {
                assert!(has_kind(s, "rbac.authorization.k8s.io/v1/ClusterRole "), "{s:?}");
                assert!(
                    !s.iter().any(|e| e.starts_with("v1/ConfigMap ") && !e.contains(&namespace)),
                    "other namespaces leaked"
                );
            }),
        ),
    ];
    for (name, selection, check) in cases {
        let outcome = backup(&client, &store, request(name, selection, Compression::Zstd)).await.unwrap();
        assert_eq!(outcome.record.status.phase, Phase::Completed, "{name}: {:?}", outcome.results.errors);
        check(&saved(&store, &outcome).await);
        // Globs are resolved against the namespaces as the backup starts; a few matched are listed one by one.
        let log = backup_core::backup::read_log(&store, &outcome.record).await.unwrap();
        let how = log.lines().find(|l| l.contains("the namespace patterns match"));
        match name {
            "exclusions-by-label-and-deletion" => {
                assert!(how.is_some_and(|l| l.contains("match 2 of") && l.ends_with("listed one by one")), "{log}")
            }
            "broad-glob" => assert!(how.is_some_and(|l| l.ends_with("listed once across the cluster")), "{log}"),
            _ => assert_eq!(how, None, "{name}"),
        }
    }
    // Let the held object go.
    let mut leaving = configmaps.get("leaving").await.unwrap();
    leaving.metadata.finalizers = None;
    configmaps.replace("leaving", &PostParams::default(), &leaving).await.unwrap();
}

#[tokio::test]
async fn unknown_resources_are_warnings_and_bad_input_writes_nothing() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("bad-input").await;
    let prefix = env.bucket_prefix("bad-input");
    let store = env.s3_store(&prefix);
    let listed = |store: Store| async move { store.inventory().await.unwrap() };

    let selection = SelectionSpec {
        included_resources: vec!["configmaps".into(), "gizmos".into()],
        ..in_namespaces(&[&namespace])
    };
    let outcome = backup(&client, &store, request("with-unknown", selection, Compression::Zstd)).await.unwrap();
    assert_eq!(outcome.record.status.phase, Phase::Completed);
    assert!(outcome.results.warnings.iter().any(|w| w.resource.as_deref() == Some("gizmos")), "{:?}", outcome.results);
    let before = listed(store.clone()).await;

    let bad = [
        ("Bad_Name", SelectionSpec::default(), "invalid backup name"),
        ("with-unknown", SelectionSpec::default(), "already exists"),
        (
            "both-selectors",
            SelectionSpec {
                label_selector: Some(parse_label_selector("a=b").unwrap()),
                or_label_selectors: vec![parse_label_selector("c=d").unwrap()],
                ..Default::default()
            },
            "cannot be combined",
        ),
    ];
    for (name, selection, message) in bad {
        let error = backup(&client, &store, request(name, selection, Compression::Zstd)).await.unwrap_err();
        assert!(error.to_string().contains(message), "{name}: {error}");
    }
    let mut bad_ttl = request("bad-ttl", SelectionSpec::default(), Compression::Zstd);
    bad_ttl.spec.ttl = "30d".into();
    assert!(backup(&client, &store, bad_ttl).await.unwrap_err().to_string().contains("invalid --ttl"));
    assert_eq!(listed(store.clone()).await.len(), before.len(), "bad input wrote something");

    // A missing bucket and a wrong secret key are named, and nothing is written.
    let missing_bucket: backup_core::store::Location =
        env.info().storage_url(&prefix).replace("s3://cairn-test", "s3://no-such-bucket").parse().unwrap();
    let error = backup(
        &client,
        &missing_bucket.open(Some(&env.s3_credentials())).unwrap(),
        request("b", SelectionSpec::default(), Compression::Zstd),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("bucket does not exist"), "{error}");
    let wrong = backup_core::store::S3Credentials { secret_access_key: "wrong".into(), ..env.s3_credentials() };
    let error = backup(
        &client,
        &env.s3_location(&prefix).open(Some(&wrong)).unwrap(),
        request("c", SelectionSpec::default(), Compression::Zstd),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("credentials were refused") || error.to_string().contains("access was denied"),
        "{error}"
    );
    assert_eq!(listed(store).await.len(), before.len());
}

#[tokio::test]
async fn gzip_backup_is_read_by_a_plain_tar_and_gzip() {
    let env = TestEnv::get();
    let (client, namespace) = sample_namespace(&env, "backup-gzip").await;
    let store = env.s3_store(&env.bucket_prefix("backup-gzip"));
    let outcome = backup(&client, &store, request("velero-format", in_namespaces(&[&namespace]), Compression::Gzip))
        .await
        .unwrap();
    let keys = backup_core::backup::backup_keys(&outcome.record);
    assert!(keys.archive.as_ref().ends_with(".tar.gz"));
    let dir = std::env::temp_dir().join(env.unique_name("gzip-extract"));
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join("backup.tar.gz");
    std::fs::write(&tarball, store.get_bytes(&keys.archive).await.unwrap()).unwrap();

    let listing = std::process::Command::new("tar").arg("-tzf").arg(&tarball).output().unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(listing.lines().next(), Some("metadata/version"));
    let extracted = std::process::Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&dir).status().unwrap();
    assert!(extracted.success());
    let path = dir.join(item_path("configmaps", Some(&namespace), "shop-config"));
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["data"]["LOG_LEVEL"], "info");
    assert_eq!(std::fs::read_to_string(dir.join("metadata/version")).unwrap(), "1.1.0\n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn tampered_archive_fails_verify_naming_the_item() {
    let env = TestEnv::get();
    let (client, namespace) = sample_namespace(&env, "backup-tamper").await;
    let store = env.s3_store(&env.bucket_prefix("backup-tamper"));
    let outcome =
        backup(&client, &store, request("sound", in_namespaces(&[&namespace]), Compression::Zstd)).await.unwrap();
    assert!(verify_backup(&store, "sound").await.unwrap().is_sound());

    // Rewrite the archive with one Secret's content changed, as an attacker or a bad disk would.
    let target = item_path("secrets", Some(&namespace), "db-credentials");
    let mut builder = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).unwrap());
    for (path, content) in archive_entries(&store, &outcome.record).await {
        let content = if path == target {
            String::from_utf8(content).unwrap().replace("czNjcjN0", "b3duZWQ=").into_bytes()
        } else {
            content
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, &path, content.as_slice()).unwrap();
    }
    let tampered = builder.into_inner().unwrap().finish().unwrap();
    let keys = backup_core::backup::backup_keys(&outcome.record);
    store.overwrite(&keys.archive, tampered.into()).await.unwrap();

    let verification = verify_backup(&store, "sound").await.unwrap();
    assert!(!verification.is_sound());
    assert!(
        verification.problems.iter().any(|p| p.path == target && p.problem.contains("content differs")),
        "{:?}",
        verification.problems
    );
}

#[tokio::test]
async fn stopping_the_s3_server_mid_backup_leaves_no_completed_backup() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("backup-outage").await;
    // About 40 MB of barely compressible data, so the backup streams for a while.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    futures::stream::iter(0..600)
        .map(|i| {
            let configmaps = configmaps.clone();
            async move {
                let data = BTreeMap::from([("blob".to_owned(), cairn_tests::environment::random_hex(32 * 1024))]);
                let object = ConfigMap {
                    metadata: ObjectMeta { name: Some(format!("blob-{i}")), ..Default::default() },
                    data: Some(data),
                    ..Default::default()
                };
                configmaps.create(&PostParams::default(), &object).await.map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();

    let root = std::env::temp_dir().join(env.unique_name("outage-s3"));
    let binaries = cairn_tests::binaries::Binaries::ensure().unwrap();
    let server = cairn_tests::s3::S3Server::start(&binaries, &root, root.with_extension("log"), None).unwrap();
    let secret = server.secret_access_key.clone();
    let store = server.open("outage").unwrap();
    let (progress, mut watch) = watch::channel(BackupProgress::default());
    let run = {
        let (client, store) = (client.clone(), store.clone());
        let request = request("interrupted", in_namespaces(&[&namespace]), Compression::Zstd);
        tokio::spawn(async move { run_backup(&client, &store, request, &progress).await })
    };
    while watch.borrow_and_update().items == 0 {
        watch.changed().await.expect("the backup reports progress");
    }
    server.stop();
    let error = run.await.unwrap().expect_err("a backup whose store went away cannot complete");
    assert!(matches!(error, BackupError::Failed { .. }), "{error}");

    // The same data directory served again: no Completed backup is there.
    let server = cairn_tests::s3::S3Server::start(&binaries, &root, root.with_extension("log2"), Some(secret)).unwrap();
    let store = server.open("outage").unwrap();
    match backup_core::backup::read_backup(&store, "interrupted").await.unwrap() {
        None => {}
        Some(record) => assert_eq!(record.status.phase, Phase::Failed),
    }
    assert!(
        backup_core::backup::list_backups(&store)
            .await
            .unwrap()
            .records
            .iter()
            .all(|r| r.status.phase != Phase::Completed)
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn an_unavailable_aggregated_api_is_a_warning_not_a_failure() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("broken-api").await;
    // An aggregated API whose backing service does not exist: its group is listed, its resources are not.
    let group = format!("{namespace}.cairn.dev");
    let manifest = format!(
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.{group}}}\nspec: {{group: {group}, version: v1, groupPriorityMinimum: 1000, versionPriority: 15, insecureSkipTLSVerify: true, service: {{namespace: {namespace}, name: nowhere, port: 443}}}}\n"
    );
    apply_manifests(&client, &manifest).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("broken-api"));
    let mut outcome = None;
    for attempt in 0..50 {
        let result = backup(
            &client,
            &store,
            request(&format!("broken-{attempt}"), in_namespaces(&[&namespace]), Compression::Zstd),
        )
        .await
        .unwrap();
        if result.results.warnings.iter().any(|w| w.reason.contains(&group)) {
            outcome = Some(result);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let outcome = outcome.expect("discovery never reported the unavailable API group");
    assert_eq!(outcome.record.status.phase, Phase::Completed, "a warning does not fail the backup");
    assert!(outcome.record.status.warnings >= 1);
    let services = kube::discovery::ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    };
    Api::<DynamicObject>::all_with(client, &services)
        .delete(&format!("v1.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}
