//! The command that joins a new node, as `kubeadm token create --print-join-command` makes it: a bootstrap
//! token stored as kubeadm stores it (Secret `kube-system/bootstrap-token-<id>`), the API server's address
//! and the CA's public-key hash from `kube-public/cluster-info` (what the joining node checks), and a warning
//! when the cluster's kubelets run different versions.

use std::{collections::BTreeMap, fmt, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Node, Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, Client, api::PostParams, config::Kubeconfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::NodeError;

/// The group kubeadm gives joining nodes' tokens.
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's default token lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Why a join command could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Reading or writing an object failed.
    #[error(transparent)]
    Kube(#[from] NodeError),
    /// The system's random source failed.
    #[error("cannot draw a random token: {0}")]
    Random(String),
    /// `kube-public/cluster-info` is missing or unusable.
    #[error(
        "the cluster publishes no usable kube-public/cluster-info ({0}); kubeadm's node discovery reads it: \
         create it with `kubeadm init phase bootstrap-token` on a control-plane node"
    )]
    ClusterInfo(String),
    /// The CA certificate cannot be read.
    #[error("cannot read the cluster's CA certificate: {0}")]
    Certificate(String),
    /// A TTL below one second or above a year.
    #[error("invalid --ttl {0:?}: give a duration between 1s and 8760h (a year), such as 24h")]
    Ttl(String),
}

/// A bootstrap token, `<id>.<secret>`: 6 and 16 characters of `[a-z0-9]`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part, in the Secret's name.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<secret>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

/// `count` characters drawn uniformly from `[a-z0-9]`.
fn random_text(count: usize) -> Result<String, JoinError> {
    let mut text = String::with_capacity(count);
    while text.len() < count {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| JoinError::Random(e.to_string()))?;
        // 252 = 7 × 36: larger bytes are dropped so that every character is equally likely.
        for byte in bytes.into_iter().filter(|b| *b < 252) {
            if text.len() < count {
                text.push(char::from(TOKEN_ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    Ok(text)
}

impl BootstrapToken {
    /// A new random token.
    pub fn generate() -> Result<BootstrapToken, JoinError> {
        Ok(BootstrapToken { id: random_text(6)?, secret: random_text(16)? })
    }

    /// The Secret kubeadm stores the token in: usable to authenticate a joining kubelet and to sign
    /// `cluster-info` for discovery, in kubeadm's node group, until `expires`.
    pub fn secret(&self, expires: jiff::Timestamp, description: &str) -> Secret {
        let data = [
            ("description", description.to_owned()),
            ("token-id", self.id.clone()),
            ("token-secret", self.secret.clone()),
            ("expiration", expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("usage-bootstrap-authentication", "true".to_owned()),
            ("usage-bootstrap-signing", "true".to_owned()),
            ("auth-extra-groups", NODE_TOKEN_GROUP.to_owned()),
        ];
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("bootstrap-token-{}", self.id)),
                namespace: Some("kube-system".to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some("bootstrap.kubernetes.io/token".to_owned()),
            data: Some(data.into_iter().map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes()))).collect()),
            ..Secret::default()
        }
    }
}

/// `sha256:<hex>` of each CA certificate's DER SubjectPublicKeyInfo in `pem` (kubeadm's
/// `--discovery-token-ca-cert-hash`; RSA and ECDSA keys alike).
pub fn ca_cert_hashes(pem: &[u8]) -> Result<Vec<String>, JoinError> {
    let mut hashes = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| JoinError::Certificate(e.to_string()))?;
        let certificate = block.parse_x509().map_err(|e| JoinError::Certificate(e.to_string()))?;
        let digest = Sha256::digest(certificate.public_key().raw);
        hashes.push(format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    }
    if hashes.is_empty() {
        return Err(JoinError::Certificate("no PEM certificate in it".into()));
    }
    Ok(hashes)
}

/// The join command and its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinCommand {
    /// The API server as the joining node reaches it, `host:port`.
    pub api_server: String,
    /// The token, `<id>.<secret>`.
    pub token: String,
    /// The token's id (its Secret is `kube-system/bootstrap-token-<id>`).
    pub token_id: String,
    /// `sha256:<hex>` of each CA's public key.
    pub ca_cert_hashes: Vec<String>,
    /// When the token stops working.
    pub expires: jiff::Timestamp,
    /// The command line.
    pub command: String,
}

impl JoinCommand {
    fn new(api_server: String, token: &BootstrapToken, ca_cert_hashes: Vec<String>, expires: jiff::Timestamp) -> Self {
        let hashes: String = ca_cert_hashes.iter().map(|h| format!(" --discovery-token-ca-cert-hash {h}")).collect();
        JoinCommand {
            command: format!("kubeadm join {api_server} --token {token}{hashes}"),
            api_server,
            token: token.to_string(),
            token_id: token.id.clone(),
            ca_cert_hashes,
            expires,
        }
    }
}

/// The API server's address and CA as `kube-public/cluster-info` publishes them.
async fn cluster_info(client: &Client) -> Result<(String, Vec<u8>), JoinError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let info = configmaps
        .get_opt("cluster-info")
        .await
        .map_err(|e| NodeError::kube("reading kube-public/cluster-info", e))?
        .ok_or_else(|| JoinError::ClusterInfo("it does not exist".into()))?;
    let text = info
        .data
        .and_then(|mut d| d.remove("kubeconfig"))
        .ok_or_else(|| JoinError::ClusterInfo("it has no kubeconfig".into()))?;
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|e| JoinError::ClusterInfo(e.to_string()))?;
    let cluster = kubeconfig
        .clusters
        .into_iter()
        .find_map(|c| c.cluster)
        .ok_or_else(|| JoinError::ClusterInfo("its kubeconfig names no cluster".into()))?;
    let server = cluster.server.ok_or_else(|| JoinError::ClusterInfo("its cluster has no server".into()))?;
    let ca = cluster
        .certificate_authority_data
        .ok_or_else(|| JoinError::ClusterInfo("its cluster has no certificate-authority-data".into()))?;
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .map_err(|e| JoinError::ClusterInfo(format!("its CA is not base64: {e}")))?;
    let address = server.trim_start_matches("https://").trim_end_matches('/').to_owned();
    Ok((address, ca))
}

/// Creates a token valid for `ttl` and returns the command that joins a node with it.
pub async fn create(client: &Client, ttl: Duration) -> Result<JoinCommand, JoinError> {
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(365 * 24 * 3600) {
        return Err(JoinError::Ttl(cairn_kube::duration::format_duration(ttl)));
    }
    let (api_server, ca) = cluster_info(client).await?;
    let hashes = ca_cert_hashes(&ca)?;
    let token = BootstrapToken::generate()?;
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(ttl).map_err(|e| JoinError::Ttl(e.to_string()))?)
        .map_err(|e| JoinError::Ttl(e.to_string()))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    secrets
        .create(&PostParams::default(), &token.secret(expires, "made by cairn node join-command"))
        .await
        .map_err(|e| NodeError::kube("creating the bootstrap token's Secret in kube-system", e))?;
    Ok(JoinCommand::new(api_server, &token, hashes, expires))
}

/// A warning when the cluster's kubelets run different versions: a new node must match them (kubeadm joins
/// with the version of its own binaries).
pub fn version_skew(nodes: &[Node]) -> Option<String> {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes {
        let version = node.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.kubelet_version.clone());
        versions.entry(version.unwrap_or_default()).or_default().push(node.metadata.name.clone().unwrap_or_default());
    }
    (versions.len() > 1).then(|| {
        let list: Vec<String> = versions.iter().map(|(v, n)| format!("{v} on {}", n.join(", "))).collect();
        format!(
            "the cluster's kubelets run different versions ({}): install the new node with the control plane's version",
            list.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_kubeadms_shape_and_differ() {
        let token = BootstrapToken::generate().unwrap();
        let text = token.to_string();
        let (id, secret) = text.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        assert!(text.chars().all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(BootstrapToken::generate().unwrap(), token);
        assert!(!format!("{token:?}").contains(&token.secret), "Debug never shows the secret");
    }

    #[test]
    fn the_token_secret_is_the_one_kubeadm_writes() {
        let token = BootstrapToken { id: "abcdef".into(), secret: "0123456789abcdef".into() };
        let secret = token.secret("2026-12-02T10:00:00Z".parse().unwrap(), "test");
        assert_eq!(secret.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(secret.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let data = secret.data.unwrap();
        let value = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        assert_eq!(value("expiration"), "2026-12-02T10:00:00Z");
        assert_eq!(value("auth-extra-groups"), NODE_TOKEN_GROUP);
        assert_eq!(
            (value("usage-bootstrap-authentication"), value("usage-bootstrap-signing")),
            ("true".into(), "true".into())
        );
    }

    #[test]
    fn the_command_repeats_the_hash_flag_per_ca() {
        let token = BootstrapToken { id: "abcdef".into(), secret: "0123456789abcdef".into() };
        let command = JoinCommand::new(
            "10.0.0.5:6443".into(),
            &token,
            vec!["sha256:aa".into(), "sha256:bb".into()],
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            command.command,
            "kubeadm join 10.0.0.5:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:aa \
             --discovery-token-ca-cert-hash sha256:bb"
        );
        assert!(ca_cert_hashes(b"not a certificate").is_err());
    }
}
