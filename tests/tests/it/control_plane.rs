//! The control plane works: the API server stores and serves objects, the controller manager runs its
//! controllers (namespace deletion, Deployment -> ReplicaSet -> Pod).

use cairn_tests::wait::eventually;
use std::{collections::BTreeMap, time::Duration};

use cairn_tests::TestEnv;
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec, ReplicaSet},
    core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};

#[tokio::test]
async fn apiserver_reports_the_pinned_kubernetes_version() {
    let env = TestEnv::get();
    let version = env.client().await.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, env.info().kubernetes_version);
}

#[tokio::test]
async fn configmap_created_in_a_new_namespace_reads_back_equal() {
    let env = TestEnv::get();
    let namespace = env.namespace("configmap-round-trip").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client().await, &namespace);
    let data = BTreeMap::from([("greeting".to_owned(), "hello".to_owned()), ("empty".to_owned(), String::new())]);
    let configmap = ConfigMap {
        metadata: ObjectMeta { name: Some("settings".into()), ..Default::default() },
        data: Some(data.clone()),
        ..Default::default()
    };
    configmaps.create(&PostParams::default(), &configmap).await.unwrap();

    let read = configmaps.get("settings").await.unwrap();
    assert_eq!(read.data, Some(data));
    assert_eq!(read.metadata.namespace.as_deref(), Some(namespace.as_str()));
    let namespaces: Api<Namespace> = Api::all(env.client().await);
    assert!(namespaces.get_opt(&namespace).await.unwrap().is_some());
}

#[tokio::test]
async fn deleted_namespace_disappears_within_60_seconds() {
    let env = TestEnv::get();
    let namespace = env.namespace("namespace-deletion").await;
    let client = env.client().await;
    let configmap =
        ConfigMap { metadata: ObjectMeta { name: Some("doomed".into()), ..Default::default() }, ..Default::default() };
    Api::<ConfigMap>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &configmap).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.delete(&namespace, &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(60), &format!("namespace {namespace} disappearing"), || async {
        namespaces.get_opt(&namespace).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn deployment_gets_a_replicaset_and_pods_from_the_controllers() {
    let env = TestEnv::get();
    let namespace = env.namespace("deployment-controllers").await;
    let client = env.client().await;
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    let deployment = Deployment {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: DeploymentSpec {
            replicas: Some(2),
            selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let by_app = ListParams::default().labels("app=web");
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let replicaset = eventually(Duration::from_secs(60), "the Deployment's ReplicaSet appearing", || async {
        replicasets.list(&by_app).await.unwrap().items.into_iter().next()
    })
    .await;
    let owner = &replicaset.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Deployment", "web"));

    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let found = eventually(Duration::from_secs(60), "two Pods of the ReplicaSet appearing", || async {
        let items = pods.list(&by_app).await.unwrap().items;
        (items.len() == 2).then_some(items)
    })
    .await;
    for pod in found {
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", replicaset.metadata.name.as_deref().unwrap())
        );
    }
}

#[tokio::test]
async fn a_bootstrap_token_authenticates_and_cluster_info_is_signed_for_it() {
    use k8s_openapi::{ByteString, api::core::v1::Secret};
    let env = TestEnv::get();
    let client = env.client().await;
    let id = cairn_tests::environment::random_hex(3);
    let secret_part = cairn_tests::environment::random_hex(8);
    let data = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec()))).collect::<BTreeMap<_, _>>()
    };
    let token = Secret {
        metadata: ObjectMeta { name: Some(format!("bootstrap-token-{id}")), ..Default::default() },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        data: Some(data(&[
            ("token-id", &id),
            ("token-secret", &secret_part),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), "kube-system").create(&PostParams::default(), &token).await.unwrap();
    // The bootstrap signer signs cluster-info for the token.
    cairn_tests::identity::wait_cluster_info_signed(&client, &id).await;
    // The token authenticates, as system:bootstrap:<id>.
    let review = cairn_tests::identity::review_token(env.info(), &format!("{id}.{secret_part}")).await.unwrap();
    assert!(review.contains(&format!("system:bootstrap:{id}")), "{review}");
}
