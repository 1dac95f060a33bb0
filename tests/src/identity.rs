//! Who the API server says a credential is: a SelfSubjectReview made with a bearer token against the
//! environment's API server, for tests of the tokens Cairn and the environment hand out; and waiting for a
//! bootstrap token's signature on cluster-info.

use crate::EnvInfo;

/// The SelfSubjectReview the API server returns for `token`, as JSON text (its `status.userInfo` names the
/// user and groups), or its refusal (401 for a token it does not accept).
pub async fn review_token(info: &EnvInfo, token: &str) -> Result<String, kube::Error> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&info.kubeconfig).expect("the test kubeconfig reads");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("the test kubeconfig gives a config");
    config.auth_info = kube::config::AuthInfo { token: Some(token.to_owned().into()), ..Default::default() };
    let client = kube::Client::try_from(config).expect("a client with the token");
    client
        .request_text(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
                .expect("a request"),
        )
        .await
}

/// Waits (up to 30 s) until the bootstrap signer has signed `kube-public/cluster-info` for the bootstrap token
/// `id`, as kubeadm's discovery expects: a `jws-kubeconfig-<id>` entry.
pub async fn wait_cluster_info_signed(client: &kube::Client, id: &str) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-public");
    let key = format!("jws-kubeconfig-{id}");
    crate::wait::eventually(std::time::Duration::from_secs(30), "cluster-info signed for the token", || {
        let (configmaps, key) = (configmaps.clone(), key.clone());
        async move { configmaps.get("cluster-info").await.ok()?.data?.contains_key(&key).then_some(()) }
    })
    .await;
}
