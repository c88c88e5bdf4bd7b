//! `alarm list|disarm`, `defrag [--cluster]` and `move-leader <hex id>`.

use clap::{ArgAction, Args, Subcommand};

use super::client::Conn;
use super::endpoint::endpoints;
use super::error::{CliError, ExitKind, Result};
use super::output::{Format, emit, emit_pb, fields_header, go_list};
use super::{Ctx, json, parse_uint};
use crate::pb::alarm_request::AlarmAction;
use crate::pb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, MoveLeaderRequest,
    StatusRequest,
};

/// `alarm <subcommand>`.
#[derive(Debug, Clone, Subcommand)]
pub enum AlarmCmd {
    /// Lists all alarms
    List,
    /// Disarms all alarms
    Disarm,
}

/// `defrag [--cluster]`.
#[derive(Debug, Clone, Args)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub cluster: bool,
}

/// `move-leader <transferee-member-id>`.
#[derive(Debug, Clone, Args)]
pub struct MoveLeaderArgs {
    /// <transferee-member-id> in hex
    pub args: Vec<String>,
}

fn alarm_name(a: i32) -> String {
    AlarmType::try_from(a)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| a.to_string())
}

fn alarm_out(ctx: &Ctx, r: &AlarmResponse) -> Result<()> {
    match ctx.printer.format {
        Format::Json => {
            let alarms = (!r.alarms.is_empty()).then(|| {
                json::array(r.alarms.iter().map(|a| {
                    json::Obj::new()
                        .uint("memberID", a.member_id)
                        .int("alarm", i64::from(a.alarm))
                        .done()
                }))
            });
            emit(
                &(json::Obj::new()
                    .opt("header", json::header(r.header.as_ref()))
                    .opt("alarms", alarms)
                    .done()
                    + "\n"),
            )
        }
        Format::Fields => {
            let mut s = fields_header(r.header.as_ref());
            for a in &r.alarms {
                s += &format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    alarm_name(a.alarm)
                );
            }
            emit(&s)
        }
        Format::Protobuf => emit_pb(r),
        Format::Table => Err(super::output::unsupported(Format::Table)),
        // Go's text form of an AlarmMember, trailing space included.
        Format::Simple => emit(
            &r.alarms
                .iter()
                .map(|a| format!("memberID:{} alarm:{} \n", a.member_id, alarm_name(a.alarm)))
                .collect::<String>(),
        ),
    }
}

/// `alarm ...`: `disarm` lists the alarms and deactivates each, as clientv3 does.
pub async fn alarm(ctx: &Ctx, cmd: AlarmCmd) -> Result<()> {
    ctx.printer.require(super::output::NOT_TABLE)?;
    let conn = ctx.connect().await?;
    let get = AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    };
    let list = conn.call(conn.maintenance().alarm(get)).await?;
    match cmd {
        AlarmCmd::List => alarm_out(ctx, &list),
        AlarmCmd::Disarm => {
            let mut out = AlarmResponse::default();
            for AlarmMember { member_id, alarm } in list.alarms {
                let req = AlarmRequest {
                    action: AlarmAction::Deactivate as i32,
                    member_id,
                    alarm,
                };
                out.alarms
                    .extend(conn.call(conn.maintenance().alarm(req)).await?.alarms);
            }
            alarm_out(ctx, &out)
        }
    }
}

/// `defrag`.
pub async fn defrag(ctx: &Ctx, a: DefragArgs) -> Result<()> {
    let mut failures = 0;
    for ep in endpoints(ctx, a.cluster).await? {
        let r = match Conn::dial(&ep, ctx.dial_timeout, ctx.command_timeout).await {
            Ok(c) => {
                c.call(c.maintenance().defragment(DefragmentRequest {}))
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => emit(&format!("Finished defragmenting etcd member[{ep}]\n"))?,
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        Err(CliError::reported(ExitKind::Error))
    } else {
        Ok(())
    }
}

/// `move-leader`: finds the leader among the endpoints and asks it to transfer leadership.
pub async fn move_leader(ctx: &Ctx, a: MoveLeaderArgs) -> Result<()> {
    ctx.printer
        .require(&[Format::Simple, Format::Json, Format::Protobuf])?;
    let [arg] = a.args.as_slice() else {
        return Err(CliError::bad_args("move-leader command needs 1 argument"));
    };
    let target = parse_uint(arg, 16).map_err(CliError::bad_args)?;
    let mut leader = None;
    for ep in &ctx.endpoints {
        let conn = Conn::dial(ep, ctx.dial_timeout, ctx.command_timeout).await?;
        let s = conn
            .call(conn.maintenance().status(StatusRequest {}))
            .await?;
        let me = s.header.as_ref().map_or(0, |h| h.member_id);
        if me != 0 && me == s.leader {
            leader = Some((conn, me));
            break;
        }
    }
    let Some((conn, leader_id)) = leader else {
        return Err(CliError::bad_args(format!(
            "no leader endpoint given at {}",
            go_list(&ctx.endpoints)
        )));
    };
    let r = conn
        .call(
            conn.maintenance()
                .move_leader(MoveLeaderRequest { target_id: target }),
        )
        .await?;
    match ctx.printer.format {
        Format::Json => emit(
            &(json::Obj::new()
                .opt("header", json::header(r.header.as_ref()))
                .done()
                + "\n"),
        ),
        Format::Protobuf => emit_pb(&r),
        _ => emit(&format!(
            "Leadership transferred from {leader_id:x} to {target:x}\n"
        )),
    }
}
