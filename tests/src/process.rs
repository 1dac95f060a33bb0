//! Child processes of the environment: started with their output in a log file, tied to the life of the
//! thread that started them (they are killed when it ends, also on a panic or a signal), and awaited until
//! ready.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::EnvError;

/// Ports components listen on are drawn from here: below the kernel's ephemeral range (32768-60999 by
/// default), from which outgoing connections take their local ports. A port the kernel handed out as free
/// could otherwise be taken by a connection (the API server's to etcd, say) before the component binds it.
const LISTEN_PORTS: std::ops::Range<u16> = 20000..32000;

/// A free TCP port on 127.0.0.1 for a component to listen on: one of 20000-31999 that nothing holds now and
/// this process has not handed out before, released for the component to bind.
pub fn free_port() -> Result<u16, EnvError> {
    // A port handed out is not bound until its component starts: two picks in a row (etcd's client and peer
    // ports) must not return the same one.
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..200 {
        let seed = u16::from_str_radix(&crate::environment::random_hex(2), 16).unwrap_or_default();
        let port = LISTEN_PORTS.start + seed % (LISTEN_PORTS.end - LISTEN_PORTS.start);
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    Err(EnvError::Io {
        what: format!("finding a free loopback port in {}-{}", LISTEN_PORTS.start, LISTEN_PORTS.end),
        error: std::io::ErrorKind::AddrInUse.into(),
    })
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok()
}

/// One running component.
#[derive(Debug)]
pub struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
    ports: Vec<u16>,
}

impl Component {
    /// Starts `program` with `args`, its stdout and stderr appended to `log`. `ports` are the ports it is
    /// told to listen on, named in the error when one is taken. The process receives SIGKILL when the
    /// calling thread ends, so nothing outlives the environment's owner.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: PathBuf,
        ports: Vec<u16>,
    ) -> Result<Component, EnvError> {
        Component::start_with_env(name, program, args, &[], log, ports)
    }

    /// [`Component::start`] with environment variables `env` set for the process: for secrets, which the
    /// command line would show to anyone running `ps`.
    pub fn start_with_env(
        name: &'static str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
        ports: Vec<u16>,
    ) -> Result<Component, EnvError> {
        let io = |what: String| move |error| EnvError::Io { what, error };
        let out = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io(format!("opening {}", log.display())))?;
        let mut command = Command::new(program);
        command.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(out).stderr(err);
        tie_to_calling_thread(&mut command);
        let child = command.spawn().map_err(io(format!("starting {name} ({})", program.display())))?;
        Ok(Component { name, child, log, ports })
    }

    /// The component's name, e.g. `kube-apiserver`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The component's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the process has exited, naming a taken port when its log says so.
    pub fn check_running(&mut self) -> Result<(), EnvError> {
        let Ok(Some(status)) = self.child.try_wait() else { return Ok(()) };
        let tail = log_tail(&self.log, 5);
        if tail.contains("address already in use") {
            let port = self.ports.iter().copied().find(|p| tail.contains(&format!(":{p}")));
            return Err(EnvError::PortTaken { component: self.name, port, log: self.log.clone() });
        }
        Err(EnvError::Exited { component: self.name, status, log: self.log.clone(), tail })
    }

    /// Waits until `ready` returns true, polling every 100 ms, failing if the process exits or `timeout`
    /// passes.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), EnvError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EnvError::NotReady { component: self.name, timeout, log: self.log.clone() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawns it ends (PR_SET_PDEATHSIG), which also
/// happens when the whole process dies by a panic, a signal or a normal exit.
#[allow(unsafe_code)]
fn tie_to_calling_thread(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever kill this child.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// The last `lines` lines of a log file, joined by newlines (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else { return String::new() };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
