//! The server benchmark: a backup run by `backup-server` as a Backup object against the same backup run
//! standalone by `cairn backup create`, with the server's resident memory idle, at its peak and after.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use cairn_tests::measure::run_measured;
use kube::{Api, api::PostParams};

pub(crate) async fn server_bench(objects: usize, cairn: &Path, server: &Path) -> anyhow::Result<()> {
    use cairn_api::{AccessMode, Backup, BackupPhase, BackupSpec};
    use cairn_tests::server::{ServerProcess, create_s3_location, install_crds};
    if !server.is_file() {
        bail!("{} not found: build it first with `cargo build --release -p backup-server`", server.display());
    }
    let (env, client, namespaces) = super::setup(cairn, "srvbench").await?;
    println!(
        "cairn server benchmark: Kubernetes {}, S3 s3s-fs, {} cores, {objects} objects loaded",
        env.info().kubernetes_version,
        std::thread::available_parallelism()?
    );
    super::load(&client, &namespaces, 0, objects, objects).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let prefix = env.bucket_prefix("srvbench");
    let command = super::cairn_command(cairn, &env, &prefix, &["backup", "create", "standalone", "-o", "json"]);
    let (standalone_wall, standalone_kib, _, output) = run_measured(command)?;
    if !output.status.success() {
        bail!("cairn backup create failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let backed_up = report["backup"]["status"]["progress"]["itemsBackedUp"].as_u64().unwrap_or(0);

    install_crds(&client).await;
    let namespace = env.namespace("srvbench-server").await;
    create_s3_location(&client, &env, &namespace, "main", &prefix, AccessMode::ReadWrite).await;
    let process = ServerProcess::start(server, &env, &namespace, "bench", &["--backup-sync-period", "0s"])?;
    let pid = process.pid().context("the server runs")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle, _) = super::memory_mib(pid);
    let backups: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    backups.create(&PostParams::default(), &Backup::new("by-server", BackupSpec::default())).await?;
    let finished = loop {
        let backup = backups.get("by-server").await?;
        if !backup.phase().is_active() {
            break backup;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server_wall = started.elapsed();
    if finished.phase() != BackupPhase::Completed {
        bail!("the server's backup ended {:?}: {:?}\n{}", finished.phase(), finished.status, process.tail());
    }
    let (after, peak) = super::memory_mib(pid);
    let by_server = finished.status.and_then(|s| s.progress).map_or(0, |p| p.items_backed_up);
    println!("{:>22} {:>9} {:>9} {:>10} {:>12}", "", "objects", "time", "objects/s", "peak RSS");
    println!(
        "{:>22} {:>9} {:>8.2}s {:>10.0} {:>10.1}MiB",
        "cairn (standalone)",
        backed_up,
        standalone_wall.as_secs_f64(),
        backed_up as f64 / standalone_wall.as_secs_f64(),
        standalone_kib as f64 / 1024.0
    );
    println!(
        "{:>22} {:>9} {:>8.2}s {:>10.0} {:>10.1}MiB",
        "backup-server",
        by_server,
        server_wall.as_secs_f64(),
        by_server as f64 / server_wall.as_secs_f64(),
        peak
    );
    println!(
        "server/standalone time: {:.2}; server memory: {idle:.1} MiB idle, {peak:.1} MiB at its peak, {after:.1} MiB after",
        server_wall.as_secs_f64() / standalone_wall.as_secs_f64()
    );
    Ok(())
}
