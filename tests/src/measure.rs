//! Measuring a child process: its wall time, peak memory and CPU time, for benchmarks and for tests that
//! bound a command's memory.

use std::{
    process::Command,
    time::{Duration, Instant},
};

/// Runs `command`, returning its wall time, peak RSS in KiB and output. The peak is the child's own VmHWM,
/// sampled every 5 ms: rusage's maxrss would include the parent's memory at spawn time, which Linux carries
/// into the child across exec.
pub fn run_measured(mut command: Command) -> anyhow::Result<(Duration, u64, f64, std::process::Output)> {
    let started = Instant::now();
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut peak, mut cpu) = (0u64, 0f64);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(stat) = std::fs::read_to_string(&stat_path)
                    && let Some(close) = stat.rfind(')')
                {
                    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
                    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
                    if ticks > 0.0 {
                        cpu = ticks / 100.0;
                    }
                }
                if let Ok(status) = std::fs::read_to_string(&status_path)
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak = peak.max(kib);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak, cpu)
        })
    };
    let output = child.wait_with_output()?;
    let elapsed = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, cpu) = sampler.join().expect("sampler thread");
    Ok((elapsed, peak, cpu, output))
}
