//! Reaching the cluster, the storage location and the Cairn server from command-line flags and the
//! environment, and which mode that puts the CLI in: standalone (it runs the engines itself against a
//! storage location) or server (it reads and writes the server's `cairn.dev` objects).

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use backup_core::store::{Location, Store};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::client::{ClientError, ServerApi, serves_cairn_api};

/// The namespace a Cairn server runs in unless told otherwise.
pub(crate) const DEFAULT_NAMESPACE: &str = "cairn";

/// How long the question "is Cairn's API served?" may take before the CLI gives up on the cluster.
const DETECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags every command that talks to a cluster, a location or a server shares.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// Storage location URL: s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION] or file:///PATH. Given, the
    /// CLI is standalone: it runs backups and restores itself, even where a Cairn server is installed, and
    /// does not ask the cluster whether one is. Default: a server when the cluster serves cairn.dev, else the
    /// embedded local directory ($CAIRN_STORAGE_DIR, else ~/.local/share/cairn/storage). A cluster that
    /// cannot be asked is an error, never a silent switch to standalone.
    #[arg(long, global = true, env = "CAIRN_STORAGE")]
    pub storage: Option<String>,
    /// Kubeconfig file; default: $KUBECONFIG (one path or several, colon-separated, merged as kubectl
    /// does), else ~/.kube/config, else the in-cluster service account.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace the Cairn server runs in (and keeps its objects in).
    /// For `cairn image`, the workloads' namespace when given on the command line (default: the kubeconfig's).
    #[arg(short = 'n', long, global = true, env = "CAIRN_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Whether `--namespace` was given on the command line (not by default or the environment).
    #[arg(skip)]
    pub namespace_on_command_line: bool,
}

impl Connection {
    /// The storage location the flags name, or the embedded default.
    pub(crate) fn location(&self) -> anyhow::Result<Location> {
        match &self.storage {
            Some(url) => Ok(url.parse()?),
            None => Ok(Location::default_local()),
        }
    }

    /// The storage location, opened to be read: a local directory named with --storage must exist (the
    /// embedded default is made, empty, on first use).
    pub(crate) fn existing_store(&self) -> anyhow::Result<Store> {
        let location = self.location()?;
        Ok(if self.storage.is_some() { location.open_existing(None)? } else { location.open(None)? })
    }

    /// A client for the cluster.
    pub(crate) async fn client(&self) -> anyhow::Result<kube::Client> {
        match self.configured_client().await? {
            Some((client, _)) => Ok(client),
            None => bail!("no cluster configured: set KUBECONFIG, pass --kubeconfig PATH, or run in a pod"),
        }
    }

    /// A client for the cluster and its URL, or None when no cluster is configured at all.
    async fn configured_client(&self) -> anyhow::Result<Option<(kube::Client, String)>> {
        let config = match &self.kubeconfig {
            Some(path) => from_file(path).await?,
            None => match kube::Config::infer().await {
                Ok(config) => config,
                Err(_) if !kubeconfig_present() => return Ok(None),
                // kube's own error names both the kubeconfig's and the in-cluster failure; read the kubeconfig
                // again to say what is wrong with it alone.
                Err(_) => from_environment().await?,
            },
        };
        let url = config.cluster_url.to_string();
        let client =
            cairn_kube::client::client(config).context("cannot build a Kubernetes client from the kubeconfig")?;
        Ok(Some((client, url)))
    }

    /// Decides the mode: standalone when a storage location is given (without asking the cluster), when no
    /// cluster is configured, or when the cluster does not serve Cairn's API; otherwise the server in
    /// `--namespace`. A cluster that cannot be asked is an error naming it and the way to work standalone.
    pub(crate) async fn mode(&self) -> anyhow::Result<Mode> {
        if self.storage.is_some() {
            return Ok(Mode::Standalone(Standalone::StorageGiven));
        }
        let Some((client, url)) = self.configured_client().await? else {
            return Ok(Mode::Standalone(Standalone::NoCluster));
        };
        let unreachable = |reason: String| {
            anyhow!(
                "cannot ask the cluster at {url} whether it serves cairn.dev: {reason}; check the cluster connection, or pass --storage URL to work standalone"
            )
        };
        match tokio::time::timeout(DETECTION_TIMEOUT, serves_cairn_api(&client)).await {
            Ok(Ok(true)) => Ok(Mode::Server(ServerApi::new(client, self.namespace.clone()))),
            Ok(Ok(false)) => Ok(Mode::Standalone(Standalone::NotInstalled)),
            Ok(Err(ClientError::Api { reason, .. })) => Err(unreachable(reason)),
            Ok(Err(error)) => Err(unreachable(error.to_string())),
            Err(_) => Err(unreachable(format!("no answer within {} s", DETECTION_TIMEOUT.as_secs()))),
        }
    }
}

/// Which mode the CLI is in.
#[derive(Debug)]
pub(crate) enum Mode {
    /// The CLI runs the engines itself against a storage location.
    Standalone(Standalone),
    /// A Cairn server does the work; the CLI reads and writes its objects.
    Server(ServerApi),
}

/// Why the CLI is standalone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standalone {
    /// `--storage` or `CAIRN_STORAGE` is set.
    StorageGiven,
    /// No kubeconfig and no in-cluster service account.
    NoCluster,
    /// The cluster does not serve `backups.cairn.dev`.
    NotInstalled,
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
        }
    }

    /// How to reach a server instead.
    fn fix(&self) -> &'static str {
        match self {
            Standalone::StorageGiven => "drop --storage and unset CAIRN_STORAGE to use the server",
            Standalone::NoCluster => "set KUBECONFIG or pass --kubeconfig PATH",
            Standalone::NotInstalled => "install one with `cairn install`",
        }
    }
}

impl Mode {
    /// The mode's name: `server` or `standalone`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mode::Server(_) => "server",
            Mode::Standalone(_) => "standalone",
        }
    }

    /// What the mode rests on: the server's namespace, or why the CLI is standalone.
    pub(crate) fn detail(&self) -> String {
        match self {
            Mode::Server(server) => format!("namespace {:?}", server.namespace()),
            Mode::Standalone(why) => why.reason(),
        }
    }

    /// The server, or an error saying that `command` needs one and how to get it.
    pub(crate) fn server(&self, command: &str) -> anyhow::Result<&ServerApi> {
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
    pub(crate) fn note(&self) {
        if std::io::stderr().is_terminal() {
            eprintln!("cairn: {} mode ({})", self.name(), self.detail());
        }
    }
}

/// Whether a kubeconfig is there to be read: `KUBECONFIG` names a file, or `~/.kube/config` exists.
fn kubeconfig_present() -> bool {
    let listed = std::env::var_os("KUBECONFIG")
        .is_some_and(|value| std::env::split_paths(&value).any(|p| !p.as_os_str().is_empty()));
    listed || std::env::home_dir().is_some_and(|home| home.join(".kube/config").exists())
}

/// A kubeconfig error in one line: an unreadable file's I/O error once (kube's message repeats its cause).
fn kubeconfig_problem(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        other => other.to_string(),
    }
}

/// The configuration `KUBECONFIG` or `~/.kube/config` gives, or why it gives none. Files `KUBECONFIG` lists
/// are merged in order, as kubectl merges them; listed files that do not exist are skipped, as kubectl
/// skips them.
async fn from_environment() -> anyhow::Result<kube::Config> {
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|value| std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    let (source, kubeconfig) = if listed.is_empty() {
        ("~/.kube/config".to_owned(), Kubeconfig::read())
    } else {
        let shown = std::env::join_paths(&listed).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let existing: Vec<&PathBuf> = listed.iter().filter(|p| p.exists()).collect();
        if existing.is_empty() {
            bail!(
                "none of the kubeconfig files in KUBECONFIG={shown} exists; check the paths or pass --kubeconfig PATH"
            );
        }
        let merged = existing
            .into_iter()
            .try_fold(Kubeconfig::default(), |merged, path| Kubeconfig::read_from(path).and_then(|c| merged.merge(c)));
        (format!("KUBECONFIG={shown}"), merged)
    };
    let kubeconfig = kubeconfig.map_err(|e| {
        anyhow!(
            "cannot read the kubeconfig {source}: {}; check the path or pass --kubeconfig PATH",
            kubeconfig_problem(&e)
        )
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(|e| {
        anyhow!(
            "the kubeconfig {source} is unusable: {}; check its current context and credentials",
            kubeconfig_problem(&e)
        )
    })
}

async fn from_file(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        anyhow!(
            "cannot read the kubeconfig {}: {}; check the path or pass --kubeconfig PATH",
            path.display(),
            kubeconfig_problem(&e)
        )
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(|e| {
        anyhow!(
            "the kubeconfig {} is unusable: {}; check its current context and credentials",
            path.display(),
            kubeconfig_problem(&e)
        )
    })
}
