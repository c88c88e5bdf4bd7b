//! Container processes: started in the pod's network namespace and a private mount and UTS
//! namespace (`ip netns exec` → `unshare` → `bash` prologue → `exec` of the binary, all one PID),
//! in their own process group, with a parent-death signal so a crashed test leaves nothing
//! running, stdout and stderr appended to the container's log file. Signals go to the process
//! group of a PID the kubelet started.

use std::path::Path;
use std::process::Stdio;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};

/// The environment every container starts from (no host variables leak in).
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The pod's network namespace.
    pub netns: &'a str,
    /// The mount prologue (a bash script ending with [`super::mounts::EXEC`]).
    pub prologue: &'a str,
    /// The command line (argv[0] is the program).
    pub argv: &'a [String],
    /// The environment.
    pub env: &'a [(String, String)],
    /// The log file (appended).
    pub log: &'a Path,
}

/// Starts the process; its PID is the container's for its whole life.
pub fn spawn(l: &Launch<'_>) -> std::io::Result<Child> {
    if let Some(dir) = l.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(l.log)?;
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--", "ip", "netns", "exec", l.netns])
        .args([
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
        ])
        .args(["bash", "-c", l.prologue])
        .args(l.argv)
        .env_clear()
        .env("PATH", BASE_PATH)
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(false);
    cmd.spawn()
}

/// Sends `signal` to the process group led by `pid` (a process this kubelet started and has
/// not reaped yet, so the PID cannot have been reused).
pub fn signal_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, signal) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "signal not delivered");
    }
}

/// Waits until the process `pid` has finished its prologue and runs `argv` (its command line
/// is `argv`), or has exited, or 10 s passed: only then is the container's filesystem view
/// complete and the container "running".
pub async fn wait_exec(child: &mut Child, pid: u32, argv: &[String]) {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let path = format!("/proc/{pid}/cmdline");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        if std::fs::read(&path).is_ok_and(|c| c == want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tracing::warn!(pid, "the container's prologue did not finish within 10 s");
}

/// A signal by number (for tests' fault injection).
pub fn signal_from(n: i32) -> Option<Signal> {
    Signal::from_named_raw(n)
}

/// A command run inside the namespaces of the process `pid` (exec probes).
pub fn exec_in(pid: u32, argv: &[String], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-m", "-n", "-u", "--"])
        .args(argv)
        .env_clear()
        .env("PATH", BASE_PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The last `lines` lines (at most `max` bytes) of a log file after byte `from` (where this
/// run of the container started writing).
pub fn log_tail(path: &Path, from: u64, lines: usize, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    let start = text.len().saturating_sub(max).max(from);
    let text = String::from_utf8_lossy(&text[start..]).into_owned();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&p, 0, 2, 1000), "b\nc");
        assert_eq!(log_tail(&p, 0, 10, 2), "c");
        assert_eq!(log_tail(&p, 4, 10, 1000), "c");
    }
}
