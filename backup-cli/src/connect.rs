//! Reaching the cluster and the storage location from command-line flags and the environment.

use std::path::{Path, PathBuf};

use anyhow::Context;
use backup_core::store::{Location, Store};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Flags every command that talks to a cluster or a location shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Storage location URL: s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION] or file:///PATH.
    /// Default: the embedded local directory ($CAIRN_STORAGE_DIR, else ~/.local/share/cairn/storage).
    #[arg(long, global = true, env = "CAIRN_STORAGE")]
    pub storage: Option<String>,
    /// Kubeconfig file; default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl Connection {
    /// The storage location the flags name, or the embedded default.
    pub fn location(&self) -> anyhow::Result<Location> {
        match &self.storage {
            Some(url) => Ok(url.parse()?),
            None => Ok(Location::default_local()),
        }
    }

    /// The storage location, opened (credentials from the AWS environment for S3).
    pub fn store(&self) -> anyhow::Result<Store> {
        Ok(self.location()?.open(None)?)
    }

    /// A client for the cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config = match &self.kubeconfig {
            Some(path) => from_file(path).await?,
            None => kube::Config::infer().await.map_err(|_| {
                anyhow::anyhow!("no cluster configured: set KUBECONFIG, pass --kubeconfig PATH, or run in a pod")
            })?,
        };
        backup_core::apiclient::client(config).context("cannot build a Kubernetes client from the kubeconfig")
    }
}

async fn from_file(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| {
        format!("cannot read the kubeconfig {}: check the path or pass --kubeconfig PATH", path.display())
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.with_context(|| {
        format!("the kubeconfig {} is unusable: check its current context and credentials", path.display())
    })
}
