//! Running the system tools the network is made with (`ip`, `iptables`): one place that turns a
//! non-zero exit into a typed error carrying the command line and its stderr.

use std::process::Command;

/// A system command that failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started.
    #[error("failed to run `{cmd}`")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("`{cmd}` failed: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// Runs `program args...` and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String, CmdError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| CmdError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(CmdError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    tracing::trace!(cmd = %cmd, "ran");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<String, CmdError> {
    run("ip", args)
}

/// Runs `ip args...`, logging instead of failing (teardown paths).
pub fn ip_quiet(args: &[&str]) {
    if let Err(e) = ip(args) {
        tracing::debug!(error = %e, "ignored during teardown");
    }
}

/// Quotes `s` for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn failures_carry_stderr() {
        let e = run("sh", &["-c", "echo nope >&2; exit 3"]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
