//! `backup-server`: runs Cairn's controllers against a cluster, in it or outside it with a kubeconfig.
//! Argument parsing, leadership and wiring only; the reconcilers are in `controllers/`.

mod context;
mod controllers;
mod http;
mod locations;
mod metrics;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use cairn_kube::{duration::parse_duration, leader::LeaderElection};
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use context::{Context, Settings};
use controllers::run_controller;

/// Cairn's server: the controllers that run backups, restores and schedules in a cluster.
#[derive(Debug, Parser)]
#[command(name = "backup-server", version = backup_core::VERSION, about)]
struct Args {
    /// Kubeconfig to use outside a cluster; default: $KUBECONFIG (a list of files, as for kubectl), else
    /// ~/.kube/config, else the pod's service account.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The namespace of Cairn's objects (backups, schedules, locations, their Secrets, the Lease).
    #[arg(long, env = "CAIRN_NAMESPACE", default_value = "cairn")]
    namespace: String,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8085")]
    metrics_address: SocketAddr,
    /// How often expired backups are deleted (Go duration).
    #[arg(long, default_value = "1h", value_parser = go_duration)]
    garbage_collection_frequency: Duration,
    /// How often each location's bucket is synchronised with the cluster; 0s disables (Go duration).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    backup_sync_period: Duration,
    /// How often each location's availability is checked (Go duration).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    store_validation_frequency: Duration,
    /// The TTL of backups that give none (Go duration).
    #[arg(long, default_value = backup_core::backup::DEFAULT_TTL)]
    default_backup_ttl: String,
    /// The largest object a restore reads from an archive (bytes, or with Ki, Mi, Gi): above the API server's
    /// 3 MiB; a larger entry means a crafted archive, and the restore refuses it.
    #[arg(long, default_value = "4Mi", value_parser = backup_core::restore::parse_size)]
    restore_max_object_size: u64,
    /// Act only while holding the Lease `cairn-server`, so that of several replicas one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// How long the Lease stays held without renewal: a standby takes over that long after the leader stops.
    #[arg(long, default_value = "15s", value_parser = go_duration)]
    leader_lease_duration: Duration,
    /// Log format: text, or json for log collectors (level, time, message and fields such as backup=NAME).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// This replica's name in the Lease (default: the host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event (for log collectors).
    Json,
}

/// The Lease replicas compete for (the CLI reads it to tell whether a server runs).
const LEASE: &str = cairn_api::server::SERVER_LEASE;

fn go_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

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

async fn run(args: Args) -> anyhow::Result<()> {
    parse_duration(&args.default_backup_ttl).context("--default-backup-ttl")?;
    let client = client(&args).await?;
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

    let metrics = Arc::new(metrics::Metrics::new());
    let (ready_tx, ready) = watch::channel(false);
    let stopping = CancellationToken::new();
    let http =
        tokio::spawn(http::serve(args.metrics_address, metrics.clone(), ready, stopping.clone().cancelled_owned()));

    // Two candidates with one identity would both lead: without an explicit one, the host name gets a
    // random suffix (as client-go does).
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cairn".into());
        format!("{host}-{}", cairn_kube::leader::random_suffix())
    });
    let mut leadership = if args.leader_elect {
        let election = LeaderElection::new(client.clone(), &args.namespace, LEASE, &identity)
            .lease_duration(args.leader_lease_duration);
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
        settings: Settings {
            gc_frequency: args.garbage_collection_frequency,
            sync_period: args.backup_sync_period,
            validation_frequency: args.store_validation_frequency,
            default_ttl: args.default_backup_ttl.clone(),
            restore_max_object_size: args.restore_max_object_size,
        },
        metrics,
        backup_slot: Semaphore::new(1),
        running: Default::default(),
    });
    let stop = || stopping.clone().cancelled_owned();
    let mut controllers = tokio::task::JoinSet::new();
    controllers.spawn(run_controller::<cairn_api::Backup, _, _>(
        context.clone(),
        controllers::backup::reconcile,
        stop(),
    ));
    controllers.spawn(run_controller::<cairn_api::Restore, _, _>(
        context.clone(),
        controllers::restore::reconcile,
        stop(),
    ));
    controllers.spawn(run_controller::<cairn_api::Schedule, _, _>(
        context.clone(),
        controllers::schedule::reconcile,
        stop(),
    ));
    controllers.spawn(run_controller::<cairn_api::DeleteBackupRequest, _, _>(
        context.clone(),
        controllers::deletion::reconcile,
        stop(),
    ));
    controllers.spawn(run_controller::<cairn_api::ServerStatusRequest, _, _>(
        context.clone(),
        controllers::server_status::reconcile,
        stop(),
    ));
    controllers.spawn(run_controller::<cairn_api::DownloadRequest, _, _>(
        context.clone(),
        controllers::download::reconcile,
        stop(),
    ));
    controllers.spawn(controllers::locations::run(context.clone(), stop()));
    controllers.spawn(controllers::gc::run(context.clone(), stop()));
    controllers.spawn(controllers::totals::run(context.clone(), stop()));
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    match args.log_format {
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
