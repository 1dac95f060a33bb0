//! Cairn's test support: a real local control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler) and a real S3 server (s3s-fs, which checks SigV4 signatures), built once from pinned
//! versions (`tests/env/versions.env`) and started on free loopback ports.
//!
//! Tests call [`TestEnv::get`]: the first call in a test process starts one environment for the whole
//! run (or reuses the one named by `CAIRN_TESTENV`, a state directory from `cairn-testenv up`), and each
//! test takes its own namespaces ([`TestEnv::namespace`]) and bucket prefix ([`TestEnv::bucket_prefix`])
//! so tests run in parallel. People use the same code through the `cairn-testenv` binary
//! (`tests/env/cairn-env up|env|status|down`).

pub mod apply;
pub mod archive_read;
pub mod binaries;
pub mod environment;
pub mod forge;
pub mod identity;
pub mod kwok;
pub mod measure;
pub mod node;
pub mod oci;
pub mod pki;
pub mod pod_network;
pub mod process;
pub mod proxy;
pub mod s3;
pub mod server;
pub mod shared;
pub mod wait;

pub use environment::{EnvInfo, Environment, NodeInfo};
pub use shared::TestEnv;

use std::{path::PathBuf, process::ExitStatus, time::Duration};

/// Why an environment could not be built or started. Each message names the cause and where to look.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `tests/env/build-deps.sh` failed; it printed the reason on stderr.
    #[error(
        "building the test environment failed: {script} exited with {status} (its one-line reason is printed above)"
    )]
    Build {
        /// The script.
        script: &'static str,
        /// Its exit status.
        status: ExitStatus,
    },
    /// A file or process operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's reason (in the message only, so it is not printed twice as a source).
        error: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating the test certificates failed: {0}")]
    Certificates(rcgen::Error),
    /// A Kubernetes client could not be built.
    #[error("building a Kubernetes client for the test environment failed: {0}")]
    Kube(kube::Error),
    /// A kubeconfig could not be read or used.
    #[error("the kubeconfig {} is unusable: {reason}", path.display())]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A component could not listen on its port.
    #[error("{component} could not listen: port {} is taken by another process; stop it or run again (a new port is picked each run). Log: {}", port.map_or("?".into(), |p| p.to_string()), log.display())]
    PortTaken {
        /// The component.
        component: &'static str,
        /// The port, when the log names it.
        port: Option<u16>,
        /// The component's log.
        log: PathBuf,
    },
    /// A component exited before it was ready.
    #[error("{component} exited with {status} before it was ready. Log: {}; last lines:\n{tail}", log.display())]
    Exited {
        /// The component.
        component: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// A component did not become ready in time.
    #[error("{component} was not ready after {timeout:?}. Log: {}", log.display())]
    NotReady {
        /// The component.
        component: &'static str,
        /// How long was waited.
        timeout: Duration,
        /// Its log.
        log: PathBuf,
    },
}
