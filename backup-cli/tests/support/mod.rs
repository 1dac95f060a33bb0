//! What the `cairn` binary's integration tests share: `cairn` run against a server's namespace, its output
//! checked, `backup-server` found beside it, and what the node tests share ([`nodes`]).

pub(crate) mod nodes;

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use cairn_tests::TestEnv;

/// `backup-server`, built into the same directory as `cairn` by `cargo test --workspace` or `cargo build`.
pub(crate) fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_cairn")).with_file_name("backup-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p backup-server` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// `cairn args --namespace namespace` against the test cluster, with no storage location in the environment:
/// it works through the server when the cluster serves `cairn.dev`.
pub(crate) fn cairn_command(env: &TestEnv, namespace: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(args)
        .args(["--namespace", namespace])
        .env("KUBECONFIG", &env.info().kubeconfig)
        .env_remove("CAIRN_STORAGE")
        .env_remove("CAIRN_NAMESPACE");
    command
}

/// [`cairn_command`], run.
pub(crate) fn cairn(env: &TestEnv, namespace: &str, args: &[&str]) -> Output {
    cairn_command(env, namespace, args).output().expect("cairn runs")
}

/// Asserts the command succeeded and returns its stdout.
pub(crate) fn succeeded(output: Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    stdout.into_owned()
}
