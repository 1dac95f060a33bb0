//! Running a command in a pod's container through the API server's pod exec (WebSocket), as hooks do: the
//! exit code, the duration, and the last lines of its output (held in a bounded window however much it
//! prints). A timeout always ends the stream; when the container has a shell, the command runs under it so
//! that its process ID is known, and a command that outlives its timeout is then killed in the container
//! rather than left running.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{AttachParams, AttachedProcess},
};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of the end of each output stream is kept.
const TAIL_BYTES: usize = 8 * 1024;
/// Lines of output kept for reports.
pub const TAIL_LINES: usize = 20;
/// The first line the shell wrapper writes to stderr: its process ID, which the command then takes.
const PID_MARK: &str = "cairn-exec-pid ";
/// How long the kill of a timed-out command may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Why it did not run or exit, when it did not (the API server's or runtime's words).
    pub failure: Option<String>,
    /// Whether it ran past its timeout.
    pub timed_out: bool,
    /// For a timed-out command: whether it was killed in the container (false: it may still run there,
    /// when the container has no shell to learn its process ID with).
    pub killed: bool,
    /// How long it ran.
    pub duration: Duration,
    /// The last [`TAIL_LINES`] lines of its stdout then stderr.
    pub output: Vec<String>,
}

impl ExecOutcome {
    /// Whether the command exited with 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// What went wrong, in words (the exit code, the timeout and whether the command was killed, why it did
    /// not run); `None` when it exited with 0.
    pub fn problem(&self) -> Option<String> {
        match (&self.failure, self.exit_code) {
            (Some(failure), _) if self.timed_out && !self.killed => {
                Some(format!("{failure}; the container has no /bin/sh to stop it with, so it may still run there"))
            }
            (Some(failure), _) if self.timed_out => Some(format!("{failure}; it was killed in the container")),
            (Some(failure), _) => Some(failure.clone()),
            (None, Some(code)) if code != 0 => Some(format!("exited with {code}")),
            _ => None,
        }
    }
}

/// What a stream gave: its first bytes (where the wrapper's process ID is) and its last [`TAIL_BYTES`].
#[derive(Default)]
struct Captured {
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// Reads `stream` to its end into `captured`, keeping its start and its end.
async fn capture(stream: Option<impl AsyncRead + Unpin>, captured: &mut Captured) {
    let Some(mut stream) = stream else { return };
    let mut buffer = [0_u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        if captured.head.len() < 64 {
            let room = 64 - captured.head.len();
            captured.head.extend_from_slice(&buffer[..read.min(room)]);
        }
        captured.tail.extend_from_slice(&buffer[..read]);
        if captured.tail.len() > 2 * TAIL_BYTES {
            captured.tail.drain(..captured.tail.len() - TAIL_BYTES);
        }
    }
}

/// The exit code a finished exec's status gives.
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    code.ok_or_else(|| status.message.clone().unwrap_or_else(|| "the command did not run".to_owned()))
}

/// The shell wrapper: prints its process ID, then becomes `command`.
fn wrapped(command: &[String]) -> Vec<String> {
    let mut all =
        vec!["/bin/sh".to_owned(), "-c".to_owned(), format!("echo \"{PID_MARK}$$\" >&2; exec \"$@\""), "sh".to_owned()];
    all.extend(command.iter().cloned());
    all
}

/// The process ID the wrapper wrote first on stderr.
fn wrapper_pid(stderr_head: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(stderr_head);
    text.lines().next()?.strip_prefix(PID_MARK)?.trim().parse().ok()
}

/// The last [`TAIL_LINES`] lines of stdout then stderr, without the wrapper's line.
fn lines_of(stdout: &[u8], stderr: &[u8]) -> Vec<String> {
    let keep = |bytes: &[u8]| bytes[bytes.len().saturating_sub(TAIL_BYTES)..].to_vec();
    let mut lines: Vec<String> = String::from_utf8_lossy(&keep(stdout)).lines().map(str::to_owned).collect();
    lines
        .extend(String::from_utf8_lossy(&keep(stderr)).lines().filter(|l| !l.starts_with(PID_MARK)).map(str::to_owned));
    let skip = lines.len().saturating_sub(TAIL_LINES);
    lines.split_off(skip)
}

async fn attach(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
) -> Result<AttachedProcess, kube::Error> {
    let params = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
    pods.exec(pod, command, &params).await
}

/// Whether a failure to start says the wrapper's shell is missing.
fn shell_missing(failure: &str) -> bool {
    failure.contains("/bin/sh") && (failure.contains("no such file") || failure.contains("not found"))
}

/// Runs `command` in `container` of the pod `namespace/pod`, for at most `timeout`.
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutcome, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut outcome = run(&pods, pod, container, wrapped(command), timeout).await?;
    if outcome.failure.as_deref().is_some_and(shell_missing) {
        let left = timeout.saturating_sub(started.elapsed());
        outcome = run(&pods, pod, container, command.to_vec(), left).await?;
    }
    outcome.duration = started.elapsed();
    Ok(outcome)
}

async fn run(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    timeout: Duration,
) -> Result<ExecOutcome, kube::Error> {
    let mut attached = attach(pods, pod, container, command).await?;
    let status = attached.take_status();
    let (stdout, stderr) = (attached.stdout(), attached.stderr());
    let (mut out, mut err) = (Captured::default(), Captured::default());
    let work = async {
        let status = async {
            match status {
                Some(status) => status.await,
                None => None,
            }
        };
        tokio::join!(capture(stdout, &mut out), capture(stderr, &mut err), status).2
    };
    let finished = tokio::time::timeout(timeout, work).await;
    let mut outcome = ExecOutcome {
        exit_code: None,
        failure: None,
        timed_out: false,
        killed: false,
        duration: Duration::ZERO,
        output: lines_of(&out.tail, &err.tail),
    };
    match finished {
        Ok(Some(status)) => match exit_code(&status) {
            Ok(code) => outcome.exit_code = Some(code),
            Err(failure) => outcome.failure = Some(failure),
        },
        Ok(None) => outcome.failure = Some("the exec stream ended without a status".to_owned()),
        Err(_) => {
            attached.abort();
            outcome.timed_out = true;
            outcome.failure = Some(format!("timed out after {}", crate::duration::format_duration(timeout)));
            if let Some(pid) = wrapper_pid(&err.head) {
                let kill = vec!["/bin/sh".to_owned(), "-c".to_owned(), format!("kill -9 {pid}")];
                let killed = Box::pin(run(pods, pod, container, kill, KILL_TIMEOUT)).await;
                outcome.killed = killed.is_ok_and(|k| k.succeeded());
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

    #[test]
    fn the_wrappers_line_gives_the_pid_and_stays_out_of_the_output() {
        let stderr = format!("{PID_MARK}4242\nwarning: slow\n");
        assert_eq!(wrapper_pid(stderr.as_bytes()), Some(4242));
        assert_eq!(wrapper_pid(b"no wrapper\n"), None);
        assert_eq!(lines_of(b"dumped\n", stderr.as_bytes()), ["dumped", "warning: slow"]);
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let kept = lines_of(many.as_bytes(), b"");
        assert_eq!((kept.len(), kept[0].as_str(), kept[TAIL_LINES - 1].as_str()), (TAIL_LINES, "line 80", "line 99"));
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        let success = Status { status: Some("Success".into()), ..Status::default() };
        assert_eq!(exit_code(&success), Ok(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&failed), Ok(3));
        let unstarted = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&unstarted), Err("executable file not found".to_owned()));
    }
}
