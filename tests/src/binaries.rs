//! The pinned component versions (`tests/env/versions.env`) and the cached binaries built from them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::EnvError;

const VERSIONS_ENV: &str = include_str!("../env/versions.env");
const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/env/build-deps.sh");

/// The versions of the components, as pinned in `tests/env/versions.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// `k8s.io/kubernetes`, e.g. `v1.37.2`.
    pub kubernetes: String,
    /// `go.etcd.io/etcd/server/v3`, e.g. `v3.6.16`.
    pub etcd: String,
    /// The `s3s-fs` crate, e.g. `0.14.1`.
    pub s3s_fs: String,
    /// The revision of `tests/env/s3` (the server around s3s-fs), bumped when it changes.
    pub s3_revision: String,
    /// `sigs.k8s.io/kwok`, e.g. `v0.8.0`.
    pub kwok: String,
    /// `helm.sh/helm/v3`, e.g. `v3.22.0`.
    pub helm: String,
}

impl Versions {
    /// The versions pinned in `tests/env/versions.env`.
    pub fn pinned() -> Versions {
        let value = |key: &str| {
            VERSIONS_ENV
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("tests/env/versions.env has no {key}"))
                .trim()
                .to_owned()
        };
        Versions {
            kubernetes: value("KUBERNETES_VERSION"),
            etcd: value("ETCD_VERSION"),
            s3s_fs: value("S3S_FS_VERSION"),
            s3_revision: value("CAIRN_S3_REVISION"),
            kwok: value("KWOK_VERSION"),
            helm: value("HELM_VERSION"),
        }
    }
}

/// The cache of built binaries: `$CAIRN_CACHE`, else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cairn")
}

/// Paths of the binaries the environment runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// kube-apiserver.
    pub apiserver: PathBuf,
    /// kube-controller-manager.
    pub controller_manager: PathBuf,
    /// kube-scheduler.
    pub scheduler: PathBuf,
    /// etcd.
    pub etcd: PathBuf,
    /// The kubelet, for the real node.
    pub kubelet: PathBuf,
    /// KWOK, for simulated nodes.
    pub kwok: PathBuf,
    /// KWOK's stage definitions.
    pub kwok_stages: PathBuf,
    /// cairn-s3, the S3 server (s3s-fs).
    pub s3: PathBuf,
    /// Helm, for installing the chart.
    pub helm: PathBuf,
}

impl Binaries {
    /// Where the binaries of `versions` are cached, built or not.
    pub fn locate(versions: &Versions) -> Binaries {
        let cache = cache_dir();
        let kubernetes = cache.join(format!("kubernetes-{}/bin", versions.kubernetes));
        Binaries {
            apiserver: kubernetes.join("kube-apiserver"),
            controller_manager: kubernetes.join("kube-controller-manager"),
            scheduler: kubernetes.join("kube-scheduler"),
            etcd: cache.join(format!("etcd-{}/bin/etcd", versions.etcd)),
            kubelet: cache.join(format!("kubelet-{}/bin/kubelet", versions.kubernetes)),
            kwok: cache.join(format!("kwok-{}/bin/kwok", versions.kwok)),
            kwok_stages: cache.join(format!("kwok-{}/stages", versions.kwok)),
            s3: cache.join(format!("cairn-s3-{}-r{}/bin/cairn-s3", versions.s3s_fs, versions.s3_revision)),
            helm: cache.join(format!("helm-{}/bin/helm", versions.helm)),
        }
    }

    fn all(&self) -> [&Path; 9] {
        [
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
            &self.etcd,
            &self.s3,
            &self.kubelet,
            &self.kwok,
            &self.kwok_stages,
            &self.helm,
        ]
    }

    /// The pinned binaries, built first by `tests/env/build-deps.sh` if any is missing from the cache.
    pub fn ensure() -> Result<Binaries, EnvError> {
        let binaries = Binaries::locate(&Versions::pinned());
        if binaries.all().iter().all(|path| path.exists()) {
            return Ok(binaries);
        }
        let status = Command::new("bash")
            .arg(BUILD_SCRIPT)
            .status()
            .map_err(|error| EnvError::Io { what: format!("running {BUILD_SCRIPT}"), error })?;
        if !status.success() {
            return Err(EnvError::Build { script: BUILD_SCRIPT, status });
        }
        if let Some(missing) = binaries.all().into_iter().find(|path| !path.exists()) {
            return Err(EnvError::Io {
                what: format!("{BUILD_SCRIPT} succeeded but did not produce {}", missing.display()),
                error: std::io::ErrorKind::NotFound.into(),
            });
        }
        Ok(binaries)
    }
}
