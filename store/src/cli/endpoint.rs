//! `endpoint health|status|hashkv [--cluster]`: one connection per endpoint (each listed
//! in `--endpoints`, or every client URL of the member list with `--cluster`).

use std::time::Instant;

use clap::{ArgAction, Args, Subcommand};

use super::client::{Conn, go_duration};
use super::error::{CliError, ExitKind, Result};
use super::output::{Format, emit, fields_header, go_list, go_quote, humanize_bytes, table};
use super::{Ctx, json};
use crate::pb::{
    HashKvRequest, HashKvResponse, MemberListRequest, RangeRequest, StatusRequest, StatusResponse,
};

/// `endpoint [--cluster] <subcommand>`.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub cluster: bool,
    /// What to check.
    #[command(subcommand)]
    pub cmd: EndpointCmd,
}

/// `endpoint` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointCmd {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

/// The endpoints to visit: `--endpoints`, or the client URLs of every member with `--cluster`.
pub async fn endpoints(ctx: &Ctx, cluster: bool) -> Result<Vec<String>> {
    if !cluster {
        return Ok(ctx.endpoints.clone());
    }
    let conn = ctx.connect().await?;
    let r = conn
        .call(conn.cluster().member_list(MemberListRequest {
            linearizable: false,
        }))
        .await
        .map_err(|e| {
            e.wrap(|m| format!("failed to fetch endpoints from etcd cluster member list: {m}"))
        })?;
    Ok(r.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

/// One endpoint's health.
struct Health {
    ep: String,
    took: String,
    error: Option<String>,
}

async fn check(ctx: &Ctx, ep: String) -> Health {
    let conn = match Conn::dial(&ep, ctx.dial_timeout, ctx.command_timeout).await {
        Ok(c) => c,
        Err(e) => {
            return Health {
                ep,
                took: String::new(),
                error: Some(e.message),
            };
        }
    };
    let start = Instant::now();
    let req = RangeRequest {
        key: b"health".to_vec(),
        ..Default::default()
    };
    let r = conn.call(conn.kv().range(req)).await;
    let took = go_duration(start.elapsed());
    // Permission denied still means the request went through consensus.
    let error = r
        .err()
        .map(|e| e.message)
        .filter(|m| !m.contains("permission denied"));
    Health { ep, took, error }
}

async fn health(ctx: &Ctx, eps: Vec<String>) -> Result<()> {
    let list = futures::future::join_all(eps.into_iter().map(|ep| check(ctx, ep))).await;
    match ctx.printer.format {
        Format::Json => {
            let items = list.iter().map(|h| {
                json::Obj::new()
                    .text_always("endpoint", &h.ep)
                    .boolean("health", h.error.is_none())
                    .text_always("took", &h.took)
                    .text("error", h.error.as_deref().unwrap_or(""))
                    .done()
            });
            emit(&(json::array(items) + "\n"))?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|h| {
                    vec![
                        h.ep.clone(),
                        h.error.is_none().to_string(),
                        h.took.clone(),
                        h.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            emit(&table(&["endpoint", "health", "took", "error"], &rows))?;
        }
        Format::Fields => {
            let s: String = list
                .iter()
                .map(|h| {
                    format!(
                        "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                        go_quote(h.ep.as_bytes()),
                        h.error.is_none(),
                        h.took,
                        h.error.as_deref().unwrap_or("")
                    )
                })
                .collect();
            emit(&s)?;
        }
        Format::Simple | Format::Protobuf => {
            for h in &list {
                match &h.error {
                    None => eprintln!(
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.ep, h.took
                    ),
                    Some(e) => eprintln!("{} is unhealthy: failed to commit proposal: {e}", h.ep),
                }
            }
        }
    }
    if list.iter().any(|h| h.error.is_some()) {
        return Err(CliError::error("unhealthy cluster"));
    }
    Ok(())
}

fn status_rows(list: &[(String, StatusResponse)]) -> Vec<Vec<String>> {
    list.iter()
        .map(|(ep, s)| {
            let id = s.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                ep.clone(),
                format!("{id:x}"),
                s.version.clone(),
                humanize_bytes(s.db_size.max(0) as u64),
                (s.leader == id).to_string(),
                s.is_learner.to_string(),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.raft_applied_index.to_string(),
                s.errors.join(", "),
            ]
        })
        .collect()
}

fn status_json(s: &StatusResponse) -> String {
    let errors =
        (!s.errors.is_empty()).then(|| json::array(s.errors.iter().map(|e| json::string(e))));
    json::Obj::new()
        .opt("header", json::header(s.header.as_ref()))
        .text("version", &s.version)
        .int("dbSize", s.db_size)
        .uint("leader", s.leader)
        .uint("raftIndex", s.raft_index)
        .uint("raftTerm", s.raft_term)
        .uint("raftAppliedIndex", s.raft_applied_index)
        .opt("errors", errors)
        .int("dbSizeInUse", s.db_size_in_use)
        .flag("isLearner", s.is_learner)
        .done()
}

async fn status(ctx: &Ctx, eps: Vec<String>) -> Result<()> {
    let mut list = Vec::new();
    let mut failed = false;
    for ep in eps {
        let r = match Conn::dial(&ep, ctx.dial_timeout, ctx.command_timeout).await {
            Ok(c) => c.call(c.maintenance().status(StatusRequest {})).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(s) => list.push((ep, s)),
            Err(e) => {
                failed = true;
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
            }
        }
    }
    match ctx.printer.format {
        Format::Json => {
            let items = list.iter().map(|(ep, s)| {
                json::Obj::new()
                    .text_always("Endpoint", ep)
                    .raw("Status", status_json(s))
                    .done()
            });
            emit(&(json::array(items) + "\n"))?;
        }
        Format::Table => emit(&table(
            &[
                "endpoint",
                "ID",
                "version",
                "db size",
                "is leader",
                "is learner",
                "raft term",
                "raft index",
                "raft applied index",
                "errors",
            ],
            &status_rows(&list),
        ))?,
        Format::Fields => {
            let mut out = String::new();
            for (ep, s) in &list {
                out += &fields_header(s.header.as_ref());
                out += &format!(
                    "\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\
                     \"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : {}\n\"Endpoint\" : {}\n\n",
                    go_quote(s.version.as_bytes()),
                    s.db_size,
                    s.leader,
                    s.is_learner,
                    s.raft_index,
                    s.raft_term,
                    s.raft_applied_index,
                    go_list(&s.errors),
                    go_quote(ep.as_bytes())
                );
            }
            emit(&out)?;
        }
        Format::Simple | Format::Protobuf => emit(
            &status_rows(&list)
                .iter()
                .map(|r| r.join(", ") + "\n")
                .collect::<String>(),
        )?,
    }
    if failed {
        Err(CliError::reported(ExitKind::Error))
    } else {
        Ok(())
    }
}

async fn hashkv(ctx: &Ctx, eps: Vec<String>, revision: i64) -> Result<()> {
    let mut list: Vec<(String, HashKvResponse)> = Vec::new();
    let mut last_err = None;
    for ep in eps {
        let r = match Conn::dial(&ep, ctx.dial_timeout, ctx.command_timeout).await {
            Ok(c) => {
                c.call(c.maintenance().hash_kv(HashKvRequest { revision }))
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(h) => list.push((ep, h)),
            Err(e) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                last_err = Some(e);
            }
        }
    }
    match ctx.printer.format {
        Format::Json => {
            let items = list.iter().map(|(ep, h)| {
                let inner = json::Obj::new()
                    .opt("header", json::header(h.header.as_ref()))
                    .uint("hash", u64::from(h.hash))
                    .int("compact_revision", h.compact_revision)
                    .done();
                json::Obj::new()
                    .text_always("Endpoint", ep)
                    .raw("HashKV", inner)
                    .done()
            });
            emit(&(json::array(items) + "\n"))?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            emit(&table(&["endpoint", "hash"], &rows))?;
        }
        Format::Fields => {
            let s: String = list
                .iter()
                .map(|(ep, h)| {
                    fields_header(h.header.as_ref())
                        + &format!(
                            "\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                            go_quote(ep.as_bytes()),
                            h.hash
                        )
                })
                .collect();
            emit(&s)?;
        }
        Format::Simple | Format::Protobuf => emit(
            &list
                .iter()
                .map(|(ep, h)| format!("{ep}, {}\n", h.hash))
                .collect::<String>(),
        )?,
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `endpoint ...`.
pub async fn endpoint(ctx: &Ctx, a: EndpointArgs) -> Result<()> {
    ctx.printer
        .require(&[Format::Simple, Format::Json, Format::Fields, Format::Table])?;
    let eps = endpoints(ctx, a.cluster).await?;
    match a.cmd {
        EndpointCmd::Health => health(ctx, eps).await,
        EndpointCmd::Status => status(ctx, eps).await,
        EndpointCmd::Hashkv { rev } => hashkv(ctx, eps, rev).await,
    }
}
