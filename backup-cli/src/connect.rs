//! Reaching the cluster, the storage location and the Cairn server from command-line flags and the
//! environment, and which mode that puts the CLI in: standalone (it runs the engines itself against a
//! storage location) or server (it reads and writes the server's `cairn.dev` objects).

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use backup_core::{
    client::{ServerApi, serves_cairn_api},
    store::{Location, Store},
};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The namespace a Cairn server runs in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "cairn";

/// How long the question "is Cairn's API served?" may take before the CLI stays standalone.
const DETECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags every command that talks to a cluster, a location or a server shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Storage location URL: s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION] or file:///PATH. Given, the
    /// CLI is standalone: it runs backups and restores itself, even where a Cairn server is installed.
    /// Default: a server when the cluster serves cairn.dev, else the embedded local directory
    /// ($CAIRN_STORAGE_DIR, else ~/.local/share/cairn/storage).
    #[arg(long, global = true, env = "CAIRN_STORAGE")]
    pub storage: Option<String>,
    /// Kubeconfig file; default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace the Cairn server runs in (and keeps its objects in).
    #[arg(short = 'n', long, global = true, env = "CAIRN_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
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
        match self.configured_client().await? {
            Some(client) => Ok(client),
            None => bail!("no cluster configured: set KUBECONFIG, pass --kubeconfig PATH, or run in a pod"),
        }
    }

    /// A client for the cluster, or None when no cluster is configured at all.
    async fn configured_client(&self) -> anyhow::Result<Option<kube::Client>> {
        let config = match &self.kubeconfig {
            Some(path) => from_file(path).await?,
            None => match kube::Config::infer().await {
                Ok(config) => config,
                Err(_) => return Ok(None),
            },
        };
        let client =
            backup_core::apiclient::client(config).context("cannot build a Kubernetes client from the kubeconfig")?;
        Ok(Some(client))
    }

    /// Decides the mode: standalone when a storage location is given or the cluster does not serve Cairn's
    /// API (or cannot be asked); otherwise the server in `--namespace`.
    pub async fn mode(&self) -> anyhow::Result<Mode> {
        if self.storage.is_some() {
            return Ok(Mode::Standalone(Standalone::StorageGiven));
        }
        let Some(client) = self.configured_client().await? else {
            return Ok(Mode::Standalone(Standalone::NoCluster));
        };
        match tokio::time::timeout(DETECTION_TIMEOUT, serves_cairn_api(&client)).await {
            Ok(Ok(true)) => Ok(Mode::Server(ServerApi::new(client, self.namespace.clone()))),
            Ok(Ok(false)) => Ok(Mode::Standalone(Standalone::NotInstalled)),
            Ok(Err(error)) => Ok(Mode::Standalone(Standalone::Unreachable(error.to_string()))),
            Err(_) => Ok(Mode::Standalone(Standalone::Unreachable(format!(
                "asking the cluster whether it serves cairn.dev took over {} s",
                DETECTION_TIMEOUT.as_secs()
            )))),
        }
    }
}

/// Which mode the CLI is in.
#[derive(Debug)]
pub enum Mode {
    /// The CLI runs the engines itself against a storage location.
    Standalone(Standalone),
    /// A Cairn server does the work; the CLI reads and writes its objects.
    Server(ServerApi),
}

/// Why the CLI is standalone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standalone {
    /// `--storage` or `CAIRN_STORAGE` is set.
    StorageGiven,
    /// No kubeconfig and no in-cluster service account.
    NoCluster,
    /// The cluster does not serve `backups.cairn.dev`.
    NotInstalled,
    /// The cluster could not be asked; why.
    Unreachable(String),
}

impl Standalone {
    /// Why, as a clause.
    fn reason(&self) -> String {
        match self {
            Standalone::StorageGiven => "--storage or CAIRN_STORAGE is set".into(),
            Standalone::NoCluster => "no cluster is configured".into(),
            Standalone::NotInstalled => {
                "the cluster does not serve backups.cairn.dev, so no Cairn server is installed".into()
            }
            Standalone::Unreachable(reason) => reason.clone(),
        }
    }

    /// How to reach a server instead.
    fn fix(&self) -> &'static str {
        match self {
            Standalone::StorageGiven => "drop --storage and unset CAIRN_STORAGE to use the server",
            Standalone::NoCluster => "set KUBECONFIG or pass --kubeconfig PATH",
            Standalone::NotInstalled => "install one with `cairn install`",
            Standalone::Unreachable(_) => "check the cluster connection and retry",
        }
    }
}

impl Mode {
    /// The mode's name: `server` or `standalone`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Server(_) => "server",
            Mode::Standalone(_) => "standalone",
        }
    }

    /// What the mode rests on: the server's namespace, or why the CLI is standalone.
    pub fn detail(&self) -> String {
        match self {
            Mode::Server(server) => format!("namespace {:?}", server.namespace()),
            Mode::Standalone(why) => why.reason(),
        }
    }

    /// The server, or an error saying that `command` needs one and how to get it.
    pub fn server(&self, command: &str) -> anyhow::Result<&ServerApi> {
        match self {
            Mode::Server(server) => Ok(server),
            Mode::Standalone(why) => {
                bail!(
                    "`{command}` needs a Cairn server, but cairn is standalone here because {}; {}",
                    why.reason(),
                    why.fix()
                )
            }
        }
    }

    /// Tells a person at a terminal which mode the command runs in (one line on stderr); silent for scripts.
    pub fn note(&self) {
        if std::io::stderr().is_terminal() {
            eprintln!("cairn: {} mode ({})", self.name(), self.detail());
        }
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
