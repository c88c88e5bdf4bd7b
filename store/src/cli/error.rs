//! Errors of `kvctl` commands and the process exit codes etcdctl uses for them.
//!
//! Every failure carries etcdctl's exit code ([`ExitKind`]) and the text printed after
//! `Error: `; server errors print the gRPC status message, which for etcd errors is etcd's
//! own text (`etcdserver: key is not provided`).

use tonic::{Code, Status};

/// Result alias for `kvctl` commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A request failed (1).
    Error,
    /// The cluster could not be reached, or a lease/connection level failure (2).
    BadConnection,
    /// Malformed `txn` or interactive `watch` input (3).
    InvalidInput,
    /// A valid flag with an unsupported value, e.g. an output format (4).
    BadFeature,
    /// A watch was canceled or a snapshot download interrupted (5).
    Interrupted,
    /// Local I/O failed, e.g. stdout closed (6).
    Io,
    /// Bad command-line arguments (128).
    BadArgs,
    /// kvctl's own: a snapshot source refused (missing, unreadable, checksum differs) (7).
    SourceRefused,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Error => 1,
            ExitKind::BadConnection => 2,
            ExitKind::InvalidInput => 3,
            ExitKind::BadFeature => 4,
            ExitKind::Interrupted => 5,
            ExitKind::Io => 6,
            ExitKind::BadArgs => 128,
            ExitKind::SourceRefused => 7,
        }
    }
}

/// A failed `kvctl` command.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Which exit code.
    pub kind: ExitKind,
    /// The text printed after `Error: ` (empty when `reported`).
    pub message: String,
    /// The command already printed what went wrong; print nothing more.
    pub reported: bool,
}

impl CliError {
    /// An error with a message.
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            reported: false,
        }
    }

    /// A failed request (exit 1).
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Error, message)
    }

    /// Bad arguments (exit 128).
    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(ExitKind::BadArgs, message)
    }

    /// Malformed input (exit 3).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ExitKind::InvalidInput, message)
    }

    /// A failure the command has already reported on stderr.
    pub fn reported(kind: ExitKind) -> Self {
        CliError {
            kind,
            message: String::new(),
            reported: true,
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.kind.code()
    }

    /// The same error with another exit code.
    pub fn with_kind(mut self, kind: ExitKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same error with its message wrapped, e.g. `failed to grant lease (...)`.
    pub fn wrap(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// A command that did not finish within `--command-timeout`.
    pub fn deadline() -> Self {
        Self::error("context deadline exceeded")
    }
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::error(status_message(&s))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(ExitKind::Io, e.to_string())
    }
}

impl From<crate::Error> for CliError {
    fn from(e: crate::Error) -> Self {
        CliError::error(e.to_string())
    }
}

/// What etcdctl prints for a gRPC status: the server's message (etcd's error text), or a
/// description of the code when there is none.
pub fn status_message(s: &Status) -> String {
    let msg = s.message().trim();
    match s.code() {
        Code::DeadlineExceeded if msg.is_empty() => "context deadline exceeded".into(),
        Code::Cancelled if msg.is_empty() => "context canceled".into(),
        _ if msg.is_empty() => format!("rpc error: code = {:?}", s.code()),
        Code::Unavailable | Code::Unknown | Code::Internal if is_transport_text(msg) => {
            let cause = root_cause(s);
            if cause.is_empty() || cause == msg {
                format!("rpc error: code = {:?} desc = {msg}", s.code())
            } else {
                format!("rpc error: code = {:?} desc = {msg}: {cause}", s.code())
            }
        }
        _ => msg.to_string(),
    }
}

fn is_transport_text(msg: &str) -> bool {
    msg.contains("transport error")
        || msg.contains("h2 protocol error")
        || msg == "error reading a body from connection"
}

/// The innermost `source()` of an error, as text (the useful part of a transport error).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
