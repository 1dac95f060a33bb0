//! An S3 server (`cairn-s3`: s3s-fs with its secret key passed in the environment, never on the command
//! line) on a free loopback port, with its own random secret key. The environment runs one; a test that
//! needs to stop a server mid-operation starts its own with [`S3Server::start`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use backup_core::store::{Location, S3Credentials, Store, StoreError};

use crate::{
    EnvError,
    binaries::Binaries,
    environment::{ACCESS_KEY_ID, BUCKET, REGION, random_hex},
    process::{Component, accepts_connections, free_port},
};

/// A running S3 server. Dropping it stops the server; its data stays in `root`.
#[derive(Debug)]
pub struct S3Server {
    component: Component,
    /// The server's URL.
    pub endpoint: String,
    /// The secret access key (the access key id is [`ACCESS_KEY_ID`]).
    pub secret_access_key: String,
    /// The directory whose subdirectories are the buckets.
    pub root: PathBuf,
}

impl S3Server {
    /// Starts a server storing under `root` (creating the bucket [`BUCKET`] there), logging to `log`, and
    /// waits until it accepts connections. With `secret` `None` a random secret key is made.
    pub fn start(binaries: &Binaries, root: &Path, log: PathBuf, secret: Option<String>) -> Result<S3Server, EnvError> {
        let bucket = root.join(BUCKET);
        std::fs::create_dir_all(&bucket)
            .map_err(|error| EnvError::Io { what: format!("creating {}", bucket.display()), error })?;
        let port = free_port()?;
        let secret_access_key = secret.unwrap_or_else(|| random_hex(20));
        let args = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--access-key".into(),
            ACCESS_KEY_ID.into(),
            root.display().to_string(),
        ];
        let env = [("CAIRN_S3_SECRET_KEY", secret_access_key.as_str())];
        let mut component = Component::start_with_env("cairn-s3", &binaries.s3, &args, &env, log, vec![port])?;
        component.wait_until(Duration::from_secs(30), || accepts_connections(port))?;
        Ok(S3Server {
            component,
            endpoint: format!("http://127.0.0.1:{port}"),
            secret_access_key,
            root: root.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.component.pid()
    }

    /// The server's bucket with `prefix`, as a storage location.
    pub fn location(&self, prefix: &str) -> Location {
        let path = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        format!("s3://{BUCKET}{path}?endpoint={}&region={REGION}", self.endpoint).parse().expect("a valid location URL")
    }

    /// The credentials.
    pub fn credentials(&self) -> S3Credentials {
        S3Credentials { access_key_id: ACCESS_KEY_ID.into(), secret_access_key: self.secret_access_key.clone() }
    }

    /// The bucket with `prefix`, opened.
    pub fn open(&self, prefix: &str) -> Result<Store, StoreError> {
        self.location(prefix).open(Some(&self.credentials()))
    }

    /// Stops the server now (SIGKILL), as a crash or an outage would.
    pub fn stop(self) {
        drop(self.component);
    }
}
