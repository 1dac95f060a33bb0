//! `backup-server`: runs Cairn's controllers against a cluster, in it or outside it with a kubeconfig.
//! Argument parsing, leadership and wiring only; the reconcilers are in `controllers/`.

mod context;
mod controllers;
mod http;
mod locations;
mod metrics;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use cairn_api::server::{LogFormat, NAMESPACE_VARIABLE, POD_NAME_VARIABLE, ServerSettings};
use cairn_kube::leader::LeaderElection;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use context::{Context, Settings};

/// Cairn's server: the controllers that run backups, restores and schedules in a cluster.
#[derive(Debug, Parser)]
#[command(name = "backup-server", version = backup_core::VERSION, about)]
struct Args {
    /// Kubeconfig to use outside a cluster; default: $KUBECONFIG (a list of files, as for kubectl), else
    /// ~/.kube/config, else the pod's service account.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The namespace of Cairn's objects (backups, schedules, locations, their Secrets, the Lease).
    #[arg(long, env = NAMESPACE_VARIABLE, default_value = "cairn")]
    namespace: String,
    /// The tunable settings, spelled once in `cairn_api::server` for this parser and `cairn install`.
    #[command(flatten)]
    settings: ServerSettings,
    /// This replica's name in the Lease (default: the host name and a random suffix).
    #[arg(long, env = POD_NAME_VARIABLE)]
    identity: Option<String>,
}

/// The Lease replicas compete for (the CLI reads it to tell whether a server runs).
const LEASE: &str = cairn_api::server::SERVER_LEASE;

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}; pass --kubeconfig PATH", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster found: set KUBECONFIG, pass --kubeconfig PATH, or run in a pod")?,
    };
    Ok(cairn_kube::client::client(config)?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Connects to the cluster and checks that Cairn's API is there and readable.
async fn connect(args: &Args) -> anyhow::Result<kube::Client> {
    let client = client(args).await?;
    let version = client.apiserver_version().await.context("the Kubernetes API server does not answer")?;
    tracing::info!(server = %version.git_version, cairn = backup_core::VERSION, namespace = %args.namespace, "connected to the cluster");
    let backups: kube::Api<cairn_api::Backup> = kube::Api::namespaced(client.clone(), &args.namespace);
    backups.list(&kube::api::ListParams::default().limit(1)).await.with_context(|| {
        format!(
            "cannot list cairn.dev backups in namespace {}: are the CRDs installed (cairn install, or kubectl apply -f \
             deploy/crds) and may this identity read them?",
            args.namespace
        )
    })?;
    Ok(client)
}

/// This replica's name in the Lease. Two candidates with one identity would both lead: without an explicit
/// one, the host name gets a random suffix (as client-go does).
fn identity(args: &Args) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cairn".into());
        format!("{host}-{}", cairn_kube::leader::random_suffix())
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = connect(&args).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (ready_tx, ready) = watch::channel(false);
    let stopping = CancellationToken::new();
    let address = args.settings.metrics_address;
    let http = tokio::spawn(http::serve(address, metrics.clone(), ready, stopping.clone().cancelled_owned()));
    let identity = identity(&args);
    let mut leadership = if args.settings.leader_elect {
        let election = LeaderElection::new(client.clone(), &args.namespace, LEASE, &identity)
            .lease_duration(args.settings.lease_duration());
        ready_tx.send_replace(true);
        tokio::select! {
            held = election.acquire() => Some(held.context("leader election")?),
            () = stop_signal() => return Ok(()),
        }
    } else {
        None
    };
    tracing::info!(%identity, "leading: starting the controllers");
    let context = Arc::new(Context {
        client,
        namespace: args.namespace.clone(),
        settings: Settings::from(&args.settings),
        metrics,
        backup_slot: Semaphore::new(1),
        running: Default::default(),
        drains: Default::default(),
    });
    let mut controllers = controllers::spawn_all(&context, &stopping);
    ready_tx.send_replace(true);

    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        () = stop_signal() => Ok(()),
        () = lost => Err(anyhow::anyhow!("lost the Lease {LEASE} in namespace {}; stopping so that only the leader acts", args.namespace)),
        _ = controllers.join_next() => Err(anyhow::anyhow!("a controller stopped unexpectedly")),
    };
    tracing::info!("shutting down; work in flight is marked Failed by the next leader");
    stopping.cancel();
    controllers.abort_all();
    if let Some(leadership) = leadership
        && let Err(error) = leadership.release().await
    {
        tracing::warn!("releasing the Lease: {error}");
    }
    let _ = http.await;
    outcome
}

fn main() -> ExitCode {
    cairn_kube::memory::run_main(cairn_kube::memory::Runtime::WorkerPerCore, async_main())
}

async fn async_main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    match args.settings.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", cairn_kube::cause::chain_text(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use backup_core::install::{InstallOptions, manifests};
    use cairn_api::server::{LogFormat, NAMESPACE_VARIABLE, POD_NAME_VARIABLE, ServerSettings};
    use clap::{CommandFactory, Parser};

    use super::Args;

    #[test]
    fn the_installed_deployment_starts_this_server_as_installed() {
        let settings = ServerSettings {
            metrics_address: "0.0.0.0:9191".parse().unwrap(),
            garbage_collection_frequency: "2h".into(),
            backup_sync_period: "5m".into(),
            store_validation_frequency: "30s".into(),
            default_backup_ttl: "72h".into(),
            restore_max_object_size: 8 << 20,
            leader_elect: false,
            leader_lease_duration: "20s".into(),
            log_format: LogFormat::Json,
        };
        let options = InstallOptions { server_settings: settings.clone(), ..InstallOptions::default() };
        let list = manifests(&options).unwrap();
        let deployment = list.iter().find(|m| m.kind() == "Deployment").unwrap();
        let container = &deployment.object().data["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
        let parsed = Args::try_parse_from(std::iter::once("backup-server".to_owned()).chain(args))
            .unwrap_or_else(|e| panic!("the server refuses the installed arguments: {e}"));
        assert_eq!(parsed.settings, settings);
        assert_eq!(container["ports"][0]["containerPort"], 9191);
        let env: Vec<&str> = container["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        let command = Args::command();
        let env_of = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_env().unwrap().to_str().unwrap().to_owned()
        };
        assert_eq!(env, [env_of("namespace").as_str(), env_of("identity").as_str()]);
        assert_eq!(env, [NAMESPACE_VARIABLE, POD_NAME_VARIABLE]);
    }
}
