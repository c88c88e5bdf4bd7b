//! `kvctl`: etcdctl v3 in spirit, for kvstore (and etcd). Same commands, flags, output
//! formats (`-w simple|json|fields|table|protobuf`), error texts and exit codes as
//! etcdctl 3.4, talking to the cluster through the crate's own generated gRPC clients.
//!
//! - [`kv`]: `put`, `get`, `del`, `compaction`; [`txn`]: `txn` from stdin;
//! - [`watch`]: `watch`, interactive `watch -i`;
//! - [`lease`]: `lease grant|revoke|timetolive|list|keep-alive`;
//! - [`member`]: `member add|remove|update|list|promote`;
//! - [`endpoint`]: `endpoint health|status|hashkv`; [`maintenance`]: `alarm`, `defrag`,
//!   `move-leader`; [`snapshot`]: `snapshot save|restore|status`;
//! - [`client`] (dialing, timeouts), [`output`] and [`json`] (printers), [`error`] (exit codes).
//!
//! Global flags may also come from the environment as in etcdctl (`ETCDCTL_ENDPOINTS`, ...).

pub mod client;
pub mod endpoint;
pub mod error;
pub mod fetch;
pub mod json;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod member;
pub mod output;
pub mod snapshot;
pub mod txn;
pub mod watch;

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

pub use error::{CliError, ExitKind, Result};
use output::{Format, Printer};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "kvctl",
    version,
    about = "A simple command line client for kvstore and etcd (etcdctl v3 compatible)"
)]
pub struct Cli {
    /// Flags of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command (accepted before or after it).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// gRPC endpoints (comma separated)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        env = "ETCDCTL_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(
        long,
        global = true,
        default_value = "2s",
        env = "ETCDCTL_DIAL_TIMEOUT"
    )]
    pub dial_timeout: String,
    /// timeout for short running command (excluding dial timeout) [default: 5s]
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT")]
    pub command_timeout: Option<String>,
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long,
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, env = "ETCDCTL_HEX", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub hex: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Puts the given key into the store
    Put(kv::PutArgs),
    /// Gets the key or a range of keys
    Get(kv::GetArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(kv::DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(txn::TxnArgs),
    /// Compacts the event history in etcd
    Compaction(kv::CompactionArgs),
    /// Watches events stream on keys or prefixes
    Watch(watch::WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(lease::LeaseCmd),
    /// Membership related commands
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// Endpoint related commands
    Endpoint(endpoint::EndpointArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(maintenance::AlarmCmd),
    /// Defragments the storage of the members with given endpoints
    Defrag(maintenance::DefragArgs),
    /// Transfers leadership to another cluster member
    MoveLeader(maintenance::MoveLeaderArgs),
    /// Manages snapshots
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Prints the version of kvctl
    Version,
}

/// What every command needs: endpoints, timeouts, printer.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--endpoints`, as given.
    pub endpoints: Vec<String>,
    /// `--dial-timeout`.
    pub dial_timeout: Duration,
    /// `--command-timeout`.
    pub command_timeout: Duration,
    /// Whether `--command-timeout` was given (snapshot save has no limit otherwise).
    pub command_timeout_set: bool,
    /// `-w` and `--hex`.
    pub printer: Printer,
}

impl Ctx {
    /// Check the global flags.
    pub fn new(g: &GlobalArgs) -> Result<Ctx> {
        let duration = |flag: &str, v: &str| {
            client::parse_duration(v).map_err(|e| {
                CliError::bad_args(format!("invalid argument {v:?} for \"--{flag}\" flag: {e}"))
            })
        };
        let endpoints: Vec<String> = g
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(CliError::bad_args("no endpoints given"));
        }
        Ok(Ctx {
            endpoints,
            dial_timeout: duration("dial-timeout", &g.dial_timeout)?,
            command_timeout: duration(
                "command-timeout",
                g.command_timeout.as_deref().unwrap_or("5s"),
            )?,
            command_timeout_set: g.command_timeout.is_some(),
            printer: Printer {
                format: Format::parse(&g.write_out)?,
                hex: g.hex,
            },
        })
    }

    /// Connect to the first reachable endpoint.
    pub async fn connect(&self) -> Result<client::Conn> {
        client::Conn::dial_any(&self.endpoints, self.dial_timeout, self.command_timeout).await
    }
}

/// Go's `strconv.ParseInt(s, base, 64)`, with its error text.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    i64::from_str_radix(s, base).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!(
            "strconv.ParseInt: parsing {}: {why}",
            output::go_quote(s.as_bytes())
        )
    })
}

/// Go's `strconv.ParseUint(s, base, 64)`, with its error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    let r = if s.starts_with('+') {
        Err(None)
    } else {
        u64::from_str_radix(s, base).map_err(Some)
    };
    r.map_err(|e| {
        let why = match e.map(|e| *e.kind()) {
            Some(std::num::IntErrorKind::PosOverflow) => "value out of range",
            _ => "invalid syntax",
        };
        format!(
            "strconv.ParseUint: parsing {}: {why}",
            output::go_quote(s.as_bytes())
        )
    })
}

/// Run one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::new(&cli.global)?;
    match cli.command {
        Command::Put(a) => kv::put(&ctx, a).await,
        Command::Get(a) => kv::get(&ctx, a).await,
        Command::Del(a) => kv::del(&ctx, a).await,
        Command::Txn(a) => txn::txn(&ctx, a).await,
        Command::Compaction(a) => kv::compaction(&ctx, a).await,
        Command::Watch(a) => watch::watch(&ctx, a).await,
        Command::Lease(c) => lease::lease(&ctx, c).await,
        Command::Member(c) => member::member(&ctx, c).await,
        Command::Endpoint(a) => endpoint::endpoint(&ctx, a).await,
        Command::Alarm(c) => maintenance::alarm(&ctx, c).await,
        Command::Defrag(a) => maintenance::defrag(&ctx, a).await,
        Command::MoveLeader(a) => maintenance::move_leader(&ctx, a).await,
        Command::Snapshot(c) => snapshot::snapshot(&ctx, c).await,
        Command::Version => {
            let api: Vec<&str> = crate::ETCD_VERSION.split('.').take(2).collect();
            output::emit(&format!(
                "kvctl version: {}\nAPI version: {}\n",
                crate::KVSTORE_VERSION,
                api.join(".")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_like_etcdctl() {
        let c = Cli::try_parse_from([
            "kvctl",
            "get",
            "a",
            "--prefix=true",
            "--endpoints=x:1,y:2",
            "-w",
            "json",
        ])
        .unwrap();
        assert_eq!(c.global.endpoints, ["x:1", "y:2"]);
        assert!(matches!(c.command, Command::Get(ref g) if g.prefix && g.args == ["a"]));
        let c = Cli::try_parse_from(["kvctl", "put", "k", "--", "-v"]).unwrap();
        assert!(matches!(c.command, Command::Put(ref p) if p.args == ["k", "-v"]));
        assert_eq!(
            parse_int("zz", 16).unwrap_err(),
            "strconv.ParseInt: parsing \"zz\": invalid syntax"
        );
    }
}
