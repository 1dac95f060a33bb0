//! `cairn install` against the real control plane: its printed manifests apply cleanly, applying them itself
//! reports every object and can be repeated without undoing the user's changes to the default location, and
//! bad flags are refused in one line before anything is sent.

use std::process::{Command, Output};

use cairn_api::{AccessMode, BackupStorageLocation, crds};
use cairn_tests::{TestEnv, apply::apply_manifests};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Namespace, PersistentVolumeClaim, Secret, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};

fn cairn(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_NAMESPACE")
        .env_remove("CAIRN_STORAGE")
        .output()
        .expect("cairn runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn assert_crds_established(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.unwrap();
        let live = api.get(&name).await.unwrap();
        let established = live.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(established.iter().any(|c| c.type_ == "Established" && c.status == "True"), "{name}");
    }
}

#[tokio::test]
async fn dry_run_manifests_apply_cleanly_and_the_server_objects_exist() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.unique_name("install-yaml");

    let printed = cairn(&env, &["install", "--dry-run", "-o", "yaml", "--namespace", &namespace]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.unwrap().is_none(), "the dry run created the namespace");

    let applied = apply_manifests(&client, &text(&printed.stdout)).await.unwrap();
    assert!(applied.iter().any(|a| a.kind == "BackupStorageLocation"));
    assert_crds_established(&client).await;

    assert!(namespaces.get_opt(&namespace).await.unwrap().is_some());
    let cluster_role = format!("cairn-{namespace}");
    Api::<ClusterRole>::all(client.clone()).get(&cluster_role).await.unwrap();
    let binding = Api::<ClusterRoleBinding>::all(client.clone()).get(&cluster_role).await.unwrap();
    assert_eq!(binding.subjects.unwrap()[0].namespace.as_deref(), Some(namespace.as_str()));
    Api::<ServiceAccount>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    Api::<Role>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace).get("cairn-storage").await.unwrap();
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    let image = deployment.spec.template.spec.unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image, format!("ghcr.io/cairn-dev/cairn-server:{}", backup_core::VERSION));
    let location = Api::<BackupStorageLocation>::namespaced(client.clone(), &namespace).get("default").await.unwrap();
    assert!(location.spec.default);
    assert_eq!(location.spec.provider, "local");
}

#[tokio::test]
async fn install_applies_an_s3_location_with_credentials_and_can_run_again() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.unique_name("install-apply");
    let dir = std::env::temp_dir().join(env.unique_name("install-secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("credentials");
    let credentials = "[default]\naws_access_key_id=AKID\naws_secret_access_key=SECRET\n";
    std::fs::write(&secret_file, credentials).unwrap();
    let args = [
        "install",
        "--namespace",
        &namespace,
        "--provider",
        "aws",
        "--bucket",
        "backups",
        "--prefix",
        "cluster-a",
        "--backup-location-config",
        "region=us-east-1,s3Url=http://127.0.0.1:9000,s3ForcePathStyle=true",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--backup-sync-period",
        "5m",
        "--sa-annotations",
        "eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/cairn",
        "--pod-annotations",
        "prometheus.io/scrape=true",
        "--no-rbac-restore",
    ];

    for (attempt, location_outcome) in [("first", "created"), ("second", "kept unchanged")] {
        let installed = cairn(&env, &args);
        let stdout = text(&installed.stdout);
        assert!(installed.status.success(), "{attempt} install: {}", text(&installed.stderr));
        for line in [
            "CustomResourceDefinition backupstoragelocations.cairn.dev applied".to_owned(),
            format!("ClusterRole cairn-{namespace} applied"),
            format!("Secret {namespace}/cairn-credentials {location_outcome}"),
            format!("Deployment {namespace}/cairn applied"),
            format!("BackupStorageLocation {namespace}/default {location_outcome}"),
            format!("installed in namespace {namespace}"),
        ] {
            assert!(stdout.contains(&line), "{attempt} install does not report {line:?}:\n{stdout}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();

    assert_crds_established(&client).await;
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace).get("cairn-credentials").await.unwrap();
    assert_eq!(secret.data.unwrap()["cloud"].0, credentials.as_bytes());
    let location = Api::<BackupStorageLocation>::namespaced(client.clone(), &namespace).get("default").await.unwrap();
    let credential = location.spec.credential.unwrap();
    assert_eq!((credential.name.as_str(), credential.key.as_str()), ("cairn-credentials", "cloud"));
    assert_eq!(location.spec.config["s3Url"], "http://127.0.0.1:9000");
    assert_eq!(location.spec.config["s3ForcePathStyle"], "true");
    assert_eq!(location.spec.object_storage.prefix.as_deref(), Some("cluster-a"));
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    let pod_annotations = deployment.spec.template.metadata.clone().unwrap().annotations.unwrap();
    assert_eq!(pod_annotations["prometheus.io/scrape"], "true");
    let container = &deployment.spec.template.spec.unwrap().containers[0];
    assert_eq!(container.args.as_deref(), Some(&["--backup-sync-period=5m".to_owned()][..]));
    let account = Api::<ServiceAccount>::namespaced(client.clone(), &namespace).get("cairn").await.unwrap();
    assert_eq!(
        account.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/cairn"
    );
    let role = Api::<ClusterRole>::all(client.clone()).get(&format!("cairn-{namespace}")).await.unwrap();
    let verbs: Vec<String> = role.rules.unwrap().into_iter().flat_map(|r| r.verbs).collect();
    assert!(!verbs.iter().any(|v| v == "bind" || v == "escalate"), "--no-rbac-restore granted {verbs:?}");
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    assert!(claims.get_opt("cairn-storage").await.unwrap().is_none(), "an S3 location got a volume");
}

#[tokio::test]
async fn reinstalling_keeps_a_read_only_default_location_and_the_only_default() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.unique_name("install-keep");
    let args = ["install", "--namespace", &namespace, "--provider", "aws", "--bucket", "backups"];
    let first = cairn(&env, &args);
    assert!(first.status.success(), "first install: {}", text(&first.stderr));

    // The user sets the location read-only (say for a migration) and adds another location, not default.
    let locations = Api::<BackupStorageLocation>::namespaced(client.clone(), &namespace);
    let read_only = serde_json::json!({ "spec": { "accessMode": "ReadOnly" } });
    locations.patch("default", &PatchParams::default(), &Patch::Merge(&read_only)).await.unwrap();
    let mut other = locations.get("default").await.unwrap();
    other.metadata = kube::api::ObjectMeta { name: Some("other".into()), ..Default::default() };
    other.spec.default = false;
    other.spec.access_mode = AccessMode::ReadWrite;
    locations.create(&PostParams::default(), &other).await.unwrap();

    let again = cairn(&env, &args);
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "second install: {}", text(&again.stderr));
    let kept = format!("BackupStorageLocation {namespace}/default kept unchanged");
    assert!(stdout.contains(&kept), "the second install does not report {kept:?}:\n{stdout}");
    assert!(stdout.contains(&format!("Deployment {namespace}/cairn applied")), "{stdout}");

    let default = locations.get("default").await.unwrap();
    assert_eq!(default.spec.access_mode, AccessMode::ReadOnly, "the reinstall undid ReadOnly");
    let defaults: Vec<String> = locations
        .list(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.spec.default)
        .filter_map(|l| l.metadata.name)
        .collect();
    assert_eq!(defaults, ["default"], "exactly one default location");
}

#[tokio::test]
async fn bad_install_flags_are_refused_in_one_line_before_anything_is_sent() {
    let env = TestEnv::get();
    let client = env.client().await;
    let namespace = env.unique_name("install-bad");
    for (args, fix) in [
        (vec!["install", "--namespace", &namespace, "--provider", "aws"], "--bucket"),
        (vec!["install", "--namespace", &namespace, "--secret-file", "/nonexistent"], "--provider aws"),
        (vec!["install", "--namespace", &namespace, "--memory-limit", "512MB"], "--memory-limit"),
        (vec!["install", "--namespace", "Not_A_Namespace"], "--namespace"),
    ] {
        let refused = cairn(&env, &args);
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(fix), "{args:?}: {stderr}");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&namespace).await.unwrap().is_none(), "a refused install created the namespace");
}
