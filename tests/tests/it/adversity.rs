//! Restores and verifications when things go wrong, against the real control plane and S3 server: a slow
//! S3 link, a link that fails mid-transfer, archives whose objects lie about where they belong, entries
//! far larger than any object, and records that name another backup.

use cairn_api::SelectionSpec;
use std::{collections::BTreeMap, time::Duration};

use backup_core::{
    archive::{DEFAULT_MAX_ENTRY_BYTES, item_path},
    backup::{BackupRecord, InspectError, list_backups, read_backup, verify_backup},
    restore::{
        ExistingResourcePolicy, ItemOutcome, RestoreError, RestoreOutcome, RestorePhase, RestoreProgress,
        RestoreRequest, RestoreSpec, find_restore, run_restore,
    },
    store::{Layout, Store, StoreError},
};
use cairn_tests::{
    TestEnv,
    forge::{Forged, cairn_backup, velero_backup, velero_backup_raw},
    proxy::Proxy,
};
use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{ConfigMap, Secret},
        rbac::v1::{ClusterRoleBinding, RoleBinding},
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde_json::json;
use tokio::sync::watch;

async fn backup_of(client: &Client, store: &Store, name: &str, namespace: &str, resources: &[&str]) -> BackupRecord {
    let selection = SelectionSpec {
        included_namespaces: vec![namespace.to_owned()],
        included_resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    };
    crate::restore::backup_selected(client, store, name, selection).await
}

/// A restore of the Secrets of `from` into `to`.
fn secrets_into(from: &str, to: &str) -> RestoreSpec {
    RestoreSpec {
        namespace_mapping: BTreeMap::from([(from.to_owned(), to.to_owned())]),
        selection: SelectionSpec { included_resources: vec!["secrets".into()], ..Default::default() },
        ..Default::default()
    }
}

/// `count` Secrets of `size` random bytes each: an archive that compresses to about `count * size`.
async fn incompressible_secrets(client: &Client, namespace: &str, count: usize, size: usize) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..count {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let secret = Secret {
            metadata: ObjectMeta { name: Some(format!("random-{i:03}")), ..Default::default() },
            data: Some(BTreeMap::from([("bytes".to_owned(), ByteString(data))])),
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
}

async fn restore(client: &Client, store: &Store, request: RestoreRequest) -> Result<RestoreOutcome, RestoreError> {
    let (progress, _) = watch::channel(RestoreProgress::default());
    run_restore(client, store, request, &progress).await
}

fn request(name: &str, backup: &str, spec: RestoreSpec) -> RestoreRequest {
    RestoreRequest::new(name, RestoreSpec { backup_name: backup.to_owned(), ..spec }, false)
}

#[tokio::test]
async fn a_restore_through_a_slow_s3_link_is_bounded_by_progress_not_by_total_time() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("slow-link").await;
    incompressible_secrets(&client, &namespace, 40, 8 * 1024).await;
    let prefix = env.bucket_prefix("slow-link");
    let record = backup_of(&client, &env.s3_store(&prefix), "slow", &namespace, &["secrets"]).await;
    let size = record.status.archive.as_ref().unwrap().size;

    // Every read of the archive takes about 35 s through the proxy: longer than any whole-request timeout
    // the client used to have (30 s).
    let proxy = Proxy::start(env.s3_address()).unwrap();
    proxy.set_rate(size / 35);
    let slow = env.s3_store_via(&prefix, &proxy.url());
    let copy = env.unique_name("slow-copy");
    let spec = secrets_into(&namespace, &copy);
    let started = std::time::Instant::now();
    let outcome = restore(&client, &slow, request("through-slow-link", "slow", spec)).await.unwrap();
    assert!(started.elapsed() > Duration::from_secs(35), "the archive was read faster than the old limit");
    assert_eq!(outcome.restore.status.phase, RestorePhase::Completed, "{:?}", outcome.restore.status);
    let restored = outcome.items.iter().filter(|i| i.name.starts_with("random-")).count();
    assert_eq!(restored, 40);
    assert_eq!(
        Api::<Secret>::namespaced(client.clone(), &copy).get("random-039").await.unwrap().data.unwrap()["bytes"]
            .0
            .len(),
        8192
    );
}

#[tokio::test]
async fn an_s3_outage_mid_restore_is_an_outage_and_the_restore_records_what_it_applied() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("outage").await;
    incompressible_secrets(&client, &namespace, 120, 4 * 1024).await;
    let prefix = env.bucket_prefix("outage");
    let direct = env.s3_store(&prefix);
    let record = backup_of(&client, &direct, "source", &namespace, &["secrets"]).await;
    let size = record.status.archive.as_ref().unwrap().size;

    // Verification through a link that fails mid-transfer: an outage, never "damaged".
    let failing = Proxy::start(env.s3_address()).unwrap();
    failing.cut_after(16 * 1024);
    let through_failing = env.s3_store_via(&prefix, &failing.url());
    let error = verify_backup(&through_failing, "source").await.unwrap_err();
    assert!(matches!(error, InspectError::Archive(_)), "{error}");
    assert!(!error.to_string().contains("damaged") && !error.to_string().contains("corrupt"), "{error}");
    let error =
        restore(&client, &through_failing, request("early", "source", RestoreSpec::default())).await.unwrap_err();
    assert!(matches!(error, RestoreError::StoreRead(_)), "{error}");
    assert!(verify_backup(&direct, "source").await.unwrap().is_sound(), "the backup itself is sound");

    // A restore whose link fails once objects are being applied: Failed, recorded, saying what was applied.
    let proxy = Proxy::start(env.s3_address()).unwrap();
    proxy.set_rate(size / 8);
    let through = env.s3_store_via(&prefix, &proxy.url());
    let copy = env.unique_name("outage-copy");
    let spec = secrets_into(&namespace, &copy);
    let (progress, mut watcher) = watch::channel(RestoreProgress::default());
    let cutter = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            while watcher.changed().await.is_ok() {
                if watcher.borrow().done >= 10 {
                    proxy.set_rate(0);
                    proxy.cut_after(8 * 1024);
                    return;
                }
            }
        })
    };
    let outcome = run_restore(&client, &through, request("cut-off", "source", spec), &progress).await.unwrap();
    cutter.await.unwrap();
    assert!(proxy.cuts() > 0, "the link was never cut");
    let status = &outcome.restore.status;
    assert_eq!(status.phase, RestorePhase::Failed, "{status:?}");
    let reason = status.failure_reason.clone().unwrap();
    assert!(reason.contains("storage location") && reason.contains("not the backup"), "{reason}");
    assert!(!reason.contains("corrupt") && !reason.contains("damaged"), "{reason}");
    let created = outcome.items.iter().filter(|i| i.outcome == ItemOutcome::Created).count() as u64;
    assert!((10..120).contains(&created), "{created} created");
    assert_eq!(status.items_restored, created);
    assert!(reason.contains(&format!("{created} objects were restored")), "{reason}");
    let stored = find_restore(&direct, "cut-off").await.unwrap();
    assert_eq!(stored.status.phase, RestorePhase::Failed);
    assert_eq!(stored.status.items_restored, created);
}

#[tokio::test]
async fn an_object_whose_content_names_another_place_than_its_path_is_refused_in_both_formats() {
    let env = TestEnv::get();
    let client = env.client().await;
    let home = env.namespace("lie-home").await;
    let victim = env.namespace("lie-victim").await;
    let store = env.s3_store(&env.bucket_prefix("lie"));
    // A binding that would make home's default account cluster-admin in the victim namespace, kept at a
    // path in the home namespace.
    let grant = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "grant", "namespace": victim},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": home}]
    });
    let path = item_path("rolebindings.rbac.authorization.k8s.io", Some(&home), "grant");
    velero_backup(&store, "velero-lie", "1.1.0\n", &[(&path, grant.clone())]).await;
    cairn_backup(
        &store,
        "cairn-lie",
        &[Forged {
            group_resource: "rolebindings.rbac.authorization.k8s.io",
            namespace: Some(&home),
            name: "grant",
            content: serde_json::to_vec(&grant).unwrap(),
        }],
    )
    .await;

    let selections = [
        RestoreSpec {
            selection: SelectionSpec { included_namespaces: vec![home.clone()], ..Default::default() },
            ..Default::default()
        },
        RestoreSpec {
            selection: SelectionSpec { excluded_namespaces: vec![victim.clone()], ..Default::default() },
            ..Default::default()
        },
        RestoreSpec {
            namespace_mapping: BTreeMap::from([(home.clone(), env.unique_name("lie-mapped"))]),
            ..Default::default()
        },
    ];
    for backup in ["velero-lie", "cairn-lie"] {
        for (i, spec) in selections.iter().enumerate() {
            for dry_run in [false, true] {
                let mut request = request(&format!("{backup}-{i}"), backup, spec.clone());
                request.dry_run = dry_run;
                let error = restore(&client, &store, request).await.unwrap_err();
                let message = error.to_string();
                assert!(matches!(error, RestoreError::Corrupt { .. }), "{backup} {i}: {message}");
                assert!(message.contains(&path) && message.contains(&victim), "{backup} {i}: {message}");
            }
        }
    }
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &victim);
    assert!(bindings.get_opt("grant").await.unwrap().is_none(), "the planted binding was created");

    // Scope must match too: a cluster-scoped object kept under a namespace is refused whole, a namespaced
    // type kept as cluster-scoped is refused before it is sent.
    let crb = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": home},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": home}]
    });
    let crb_path = item_path("clusterrolebindings.rbac.authorization.k8s.io", Some(&home), &home);
    velero_backup(&store, "scoped-lie", "1.1.0\n", &[(&crb_path, crb)]).await;
    let error =
        restore(&client, &store, request("scoped-lie", "scoped-lie", RestoreSpec::default())).await.unwrap_err();
    assert!(matches!(error, RestoreError::Corrupt { .. }), "{error}");
    assert!(Api::<ClusterRoleBinding>::all(client.clone()).get_opt(&home).await.unwrap().is_none());
    let unscoped = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": home}});
    velero_backup(&store, "unscoped", "1.1.0\n", &[(&item_path("configmaps", None, &home), unscoped)]).await;
    let outcome = restore(&client, &store, request("unscoped", "unscoped", RestoreSpec::default())).await.unwrap();
    assert_eq!(outcome.restore.status.phase, RestorePhase::PartiallyFailed);
    let reason = outcome.items.iter().next().unwrap().reason.unwrap_or_default();
    assert!(reason.contains("refused") && reason.contains("namespaced"), "{reason}");
}

#[tokio::test]
async fn an_archive_entry_over_the_size_limit_is_refused_naming_it_and_the_limit() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.unique_name("bomb");
    let store = env.s3_store(&env.bucket_prefix("bomb"));
    // 200 MiB in an archive of a few hundred KB.
    let mut bomb = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"bomb","namespace":"{namespace}"}},"data":{{"x":""#
    )
    .into_bytes();
    bomb.resize(bomb.len() + 200 * 1024 * 1024, b'a');
    bomb.extend_from_slice(br#""}}"#);
    let path = item_path("configmaps", Some(&namespace), "bomb");
    velero_backup_raw(&store, "velero-bomb", "1.1.0\n", &[(&path, bomb)]).await;
    let error =
        restore(&client, &store, request("velero-bomb", "velero-bomb", RestoreSpec::default())).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&path) && message.contains(&format!("limit of {DEFAULT_MAX_ENTRY_BYTES} bytes")),
        "{message}"
    );

    // A Cairn backup with a 5 MiB object: refused at verification, and read when the limit is raised (the
    // API server then refuses the object itself, as it refuses anything over 3 MiB).
    let mut big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big","namespace":"{namespace}"}},"data":{{"x":""#
    )
    .into_bytes();
    big.resize(big.len() + 5 * 1024 * 1024, b'b');
    big.extend_from_slice(br#""}}"#);
    let forged = Forged { group_resource: "configmaps", namespace: Some(&namespace), name: "big", content: big };
    cairn_backup(&store, "cairn-big", &[forged]).await;
    let error = restore(&client, &store, request("cairn-big", "cairn-big", RestoreSpec::default())).await.unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
    let mut raised = request("cairn-big-raised", "cairn-big", RestoreSpec::default());
    raised.max_entry_bytes = 8 * 1024 * 1024;
    let outcome = restore(&client, &store, raised).await.unwrap();
    let big = outcome.items.iter().find(|i| i.name == "big").unwrap();
    assert_eq!(big.outcome, ItemOutcome::Failed, "{big:?}");
}

#[tokio::test]
async fn a_record_that_names_another_backup_than_its_folder_is_damaged() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("moved-record").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let object =
        ConfigMap { metadata: ObjectMeta { name: Some("c".into()), ..Default::default() }, ..Default::default() };
    configmaps.create(&PostParams::default(), &object).await.unwrap();
    let store = env.s3_store(&env.bucket_prefix("moved-record"));
    backup_of(&client, &store, "first", &namespace, &[]).await;
    let record = store.get_bytes(&Layout.backup_record("first")).await.unwrap();
    store.overwrite(&Layout.backup_record("second"), record).await.unwrap();

    let error = read_backup(&store, "second").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { problem, .. } if problem.contains("names backup \"first\"")),
        "{error}"
    );
    let listing = list_backups(&store).await.unwrap();
    let names: Vec<&str> = listing.records.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["first"]);
    assert_eq!(listing.damaged.len(), 1, "{:?}", listing.damaged);
    assert!(verify_backup(&store, "second").await.is_err());
    let error = restore(&client, &store, request("from-second", "second", RestoreSpec::default())).await.unwrap_err();
    assert!(error.to_string().contains("names backup \"first\""), "{error}");
}

#[tokio::test]
async fn a_mapped_namespace_restored_again_with_update_is_unchanged() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.namespace("remap-update").await;
    let store = env.s3_store(&env.bucket_prefix("remap-update"));
    backup_of(&client, &store, "ns", &namespace, &["namespaces"]).await;
    let target = env.unique_name("remap-target");
    let spec = RestoreSpec {
        namespace_mapping: BTreeMap::from([(namespace.clone(), target.clone())]),
        existing_resource_policy: ExistingResourcePolicy::Update,
        ..Default::default()
    };
    let first = restore(&client, &store, request("remap-1", "ns", spec.clone())).await.unwrap();
    let created = first.items.iter().find(|i| i.resource == "namespaces").unwrap();
    assert_eq!(created.outcome, ItemOutcome::Created, "{created:?}");
    let second = restore(&client, &store, request("remap-2", "ns", spec)).await.unwrap();
    let again = second.items.iter().find(|i| i.resource == "namespaces").unwrap();
    // The API server's kubernetes.io/metadata.name label is not a difference.
    assert_eq!(again.outcome, ItemOutcome::Unchanged, "{again:?}");
}
