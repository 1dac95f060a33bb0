//! Who the API server says a credential is: a SelfSubjectReview made with a bearer token against the
//! environment's API server, for tests of the tokens Cairn and the environment hand out.

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
