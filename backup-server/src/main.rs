//! `backup-server`: runs Cairn's controllers against a cluster, in it or outside it with a kubeconfig.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Cairn's server: the controllers that run backups, restores and schedules in a cluster.
#[derive(Debug, Parser)]
#[command(name = "backup-server", version = backup_core::VERSION, about)]
struct Args {
    /// Kubeconfig to use outside a cluster; in a pod the service account is used.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}; pass --kubeconfig PATH", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await.context("no cluster found: run in a pod or pass --kubeconfig PATH")?,
    };
    Ok(backup_core::apiclient::client(config)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = client(&args).await?;
    let version = client.apiserver_version().await.context("the Kubernetes API server does not answer")?;
    tracing::info!(server = %version.git_version, cairn = backup_core::VERSION, "connected to the cluster");
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
