//! `lease grant|revoke|timetolive|list|keep-alive`: lease IDs are read and printed in
//! hexadecimal (`lease 694d7a3d2c0e4a0c granted with TTL(60s)`), as etcdctl's.

use std::time::Duration;

use clap::{ArgAction, Subcommand};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::client::within;
use super::error::{CliError, ExitKind, Result};
use super::output::{Format, NOT_TABLE, Printer, emit, emit_pb, fields_header, go_list};
use super::{Ctx, json, parse_int};
use crate::pb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, ResponseHeader,
};

/// `lease <subcommand>`.
#[derive(Debug, Clone, Subcommand)]
pub enum LeaseCmd {
    /// Creates leases: grant <ttl>
    Grant {
        /// <ttl> in seconds
        args: Vec<String>,
    },
    /// Revokes leases: revoke <leaseID>
    Revoke {
        /// <leaseID> in hex
        args: Vec<String>,
    },
    /// Get lease information: timetolive <leaseID>
    Timetolive {
        /// Get keys attached to this lease
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        keys: bool,
        /// <leaseID> in hex
        args: Vec<String>,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew): keep-alive <leaseID>
    KeepAlive {
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        once: bool,
        /// <leaseID> in hex
        args: Vec<String>,
    },
}

fn one_arg<'a>(args: &'a [String], usage: &str) -> Result<&'a str> {
    match args {
        [a] => Ok(a),
        _ => Err(CliError::bad_args(usage)),
    }
}

/// A lease ID argument (hex).
pub fn lease_id(arg: &str) -> Result<i64> {
    parse_int(arg, 16)
        .map_err(|e| CliError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// A response with the header fields inlined, as clientv3's lease responses marshal.
fn lease_json(h: Option<&ResponseHeader>, rest: json::Obj) -> String {
    json::header_fields(h).inline(rest).done() + "\n"
}

fn keep_alive_out(p: &Printer, r: &LeaseKeepAliveResponse) -> Result<()> {
    match p.format {
        Format::Json => emit(&lease_json(
            r.header.as_ref(),
            json::Obj::new().num("ID", r.id).num("TTL", r.ttl),
        )),
        Format::Fields => emit(
            &(fields_header(r.header.as_ref())
                + &format!("\"ID\" : {}\n\"TTL\" : {}\n", r.id, r.ttl)),
        ),
        Format::Protobuf => emit_pb(r),
        _ => emit(&format!(
            "lease {:016x} keepalived with TTL({})\n",
            r.id, r.ttl
        )),
    }
}

/// `lease ...`.
pub async fn lease(ctx: &Ctx, cmd: LeaseCmd) -> Result<()> {
    let p = ctx.printer;
    p.require(NOT_TABLE)?;
    match cmd {
        LeaseCmd::Grant { args } => {
            let ttl_arg = one_arg(&args, "lease grant command needs TTL argument")?;
            let ttl =
                parse_int(ttl_arg, 10).map_err(|e| CliError::bad_args(format!("bad TTL ({e})")))?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
                .await
                .map_err(|e| e.wrap(|m| format!("failed to grant lease ({m})")))?;
            if !r.error.is_empty() {
                return Err(CliError::error(format!(
                    "failed to grant lease ({})",
                    r.error
                )));
            }
            match p.format {
                Format::Json => emit(&lease_json(
                    r.header.as_ref(),
                    json::Obj::new()
                        .num("ID", r.id)
                        .num("TTL", r.ttl)
                        .text_always("Error", &r.error),
                )),
                Format::Fields => emit(
                    &(fields_header(r.header.as_ref())
                        + &format!("\"ID\" : {}\n\"TTL\" : {}\n", r.id, r.ttl)),
                ),
                Format::Protobuf => emit_pb(&r),
                _ => emit(&format!(
                    "lease {:016x} granted with TTL({}s)\n",
                    r.id, r.ttl
                )),
            }
        }
        LeaseCmd::Revoke { args } => {
            let id = lease_id(one_arg(&args, "lease revoke command needs 1 argument")?)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.lease().lease_revoke(LeaseRevokeRequest { id }))
                .await
                .map_err(|e| e.wrap(|m| format!("failed to revoke lease ({m})")))?;
            match p.format {
                Format::Json => emit(
                    &(json::Obj::new()
                        .opt("header", json::header(r.header.as_ref()))
                        .done()
                        + "\n"),
                ),
                Format::Fields => emit(&fields_header(r.header.as_ref())),
                Format::Protobuf => emit_pb(&r),
                _ => emit(&format!("lease {id:016x} revoked\n")),
            }
        }
        LeaseCmd::Timetolive { keys, args } => {
            let id = lease_id(one_arg(
                &args,
                "lease timetolive command needs lease ID as argument",
            )?)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(
                    conn.lease()
                        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys }),
                )
                .await
                .map_err(|e| e.with_kind(ExitKind::BadConnection))?;
            match p.format {
                Format::Json => {
                    let ks = json::array_or_null(
                        r.keys
                            .iter()
                            .map(|k| json::string(&json::base64(k)))
                            .collect(),
                    );
                    let o = json::Obj::new()
                        .num("id", r.id)
                        .num("ttl", r.ttl)
                        .num("granted-ttl", r.granted_ttl)
                        .raw("keys", ks);
                    emit(&lease_json(r.header.as_ref(), o))
                }
                Format::Fields => {
                    let mut s = fields_header(r.header.as_ref());
                    s += &format!(
                        "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                        r.id, r.ttl, r.granted_ttl
                    );
                    for k in &r.keys {
                        s += &format!("\"Key\" : {}\n", super::output::go_quote(k));
                    }
                    emit(&s)
                }
                Format::Protobuf => emit_pb(&r),
                _ if r.granted_ttl == 0 && r.ttl == -1 => {
                    emit(&format!("lease {:016x} already expired\n", r.id))
                }
                _ => {
                    let mut s = format!(
                        "lease {:016x} granted with TTL({}s), remaining({}s)",
                        r.id, r.granted_ttl, r.ttl
                    );
                    if keys {
                        let ks: Vec<String> = r
                            .keys
                            .iter()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect();
                        s += &format!(", attached keys({})", go_list(&ks));
                    }
                    emit(&(s + "\n"))
                }
            }
        }
        LeaseCmd::List => {
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.lease().lease_leases(LeaseLeasesRequest {}))
                .await
                .map_err(|e| e.with_kind(ExitKind::BadConnection))?;
            match p.format {
                Format::Json => {
                    let ls = json::array(
                        r.leases
                            .iter()
                            .map(|l| json::Obj::new().num("id", l.id).done()),
                    );
                    emit(&lease_json(
                        r.header.as_ref(),
                        json::Obj::new().raw("leases", ls),
                    ))
                }
                Format::Fields => {
                    let ids: String = r
                        .leases
                        .iter()
                        .map(|l| format!("\"ID\" : {}\n", l.id))
                        .collect();
                    emit(&(fields_header(r.header.as_ref()) + &ids))
                }
                Format::Protobuf => emit_pb(&r),
                _ => {
                    let ids: String = r
                        .leases
                        .iter()
                        .map(|l| format!("{:016x}\n", l.id))
                        .collect();
                    emit(&format!("found {} leases\n{ids}", r.leases.len()))
                }
            }
        }
        LeaseCmd::KeepAlive { once, args } => {
            let id = lease_id(one_arg(
                &args,
                "lease keep-alive command needs lease ID as argument",
            )?)?;
            keep_alive(ctx, id, once).await
        }
    }
}

/// `lease keep-alive`: renew every TTL/3 until the lease is gone (or once with `--once`).
async fn keep_alive(ctx: &Ctx, id: i64, once: bool) -> Result<()> {
    let p = ctx.printer;
    let conn = ctx.connect().await?;
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(LeaseKeepAliveRequest { id })
        .expect("a fresh channel has room");
    let bad = |e: CliError| e.with_kind(ExitKind::BadConnection);
    let mut stream = within(
        conn.command_timeout(),
        conn.lease().lease_keep_alive(ReceiverStream::new(rx)),
    )
    .await
    .map_err(bad)?;
    loop {
        let next = stream.message();
        let r = if once {
            tokio::time::timeout(conn.command_timeout(), next)
                .await
                .map_err(|_| bad(CliError::deadline()))?
        } else {
            next.await
        };
        let r = match r {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(bad(CliError::error(
                    "lease keep-alive stream closed by the server",
                )));
            }
            Err(s) => return Err(bad(s.into())),
        };
        if r.ttl <= 0 {
            if once {
                return Err(bad(CliError::error(
                    "etcdserver: requested lease not found",
                )));
            }
            if p.format == Format::Simple {
                emit(&format!("lease {id:016x} expired or revoked.\n"))?;
            }
            return Ok(());
        }
        keep_alive_out(&p, &r)?;
        if once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis((r.ttl as u64 * 1000 / 3).max(500))).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return Err(bad(CliError::error("lease keep-alive stream closed")));
        }
    }
}
