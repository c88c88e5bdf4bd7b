//! `member add|remove|update|list|promote`: member IDs in hexadecimal; `member add` prints
//! the `ETCD_NAME`/`ETCD_INITIAL_CLUSTER`/... block to start the new member with.

use clap::{ArgAction, Subcommand};

use super::error::{CliError, Result};
use super::output::{Format, Printer, emit, emit_pb, fields_header, go_quote, table};
use super::{Ctx, json, parse_uint};
use crate::pb::{
    Member, MemberAddRequest, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, ResponseHeader,
};

/// `member <subcommand>`.
#[derive(Debug, Clone, Subcommand)]
pub enum MemberCmd {
    /// Adds a member into the cluster: add <memberName> --peer-urls=...
    Add {
        /// comma separated peer URLs for the new member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        learner: bool,
        /// <memberName>
        args: Vec<String>,
    },
    /// Removes a member from the cluster: remove <memberID>
    Remove {
        /// <memberID> in hex
        args: Vec<String>,
    },
    /// Updates a member in the cluster: update <memberID> --peer-urls=...
    Update {
        /// comma separated peer URLs for the updated member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// <memberID> in hex
        args: Vec<String>,
    },
    /// Lists all members in the cluster
    List {
        /// Linearizable(l) or Serializable(s)
        #[arg(long, default_value = "l")]
        consistency: String,
    },
    /// Promotes a non-voting learner member to a voting one: promote <memberID>
    Promote {
        /// <memberID> in hex
        args: Vec<String>,
    },
}

fn member_id(args: &[String]) -> Result<u64> {
    let [arg] = args else {
        return Err(CliError::bad_args("member ID is not provided"));
    };
    parse_uint(arg, 16)
        .map_err(|e| CliError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn peer_urls(flag: &str) -> Result<Vec<String>> {
    if flag.is_empty() {
        return Err(CliError::bad_args("member peer urls not provided"));
    }
    Ok(flag.split(',').map(str::to_string).collect())
}

/// The rows of `member list` (simple and table).
pub fn member_rows(ms: &[Member]) -> Vec<Vec<String>> {
    ms.iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

fn list_out(p: &Printer, r: &MemberListResponse) -> Result<()> {
    match p.format {
        Format::Json => emit(
            &(json::Obj::new()
                .opt("header", json::header(r.header.as_ref()))
                .opt("members", json::members(&r.members))
                .done()
                + "\n"),
        ),
        Format::Protobuf => emit_pb(r),
        Format::Table => emit(&table(
            &[
                "ID",
                "Status",
                "Name",
                "Peer Addrs",
                "Client Addrs",
                "Is Learner",
            ],
            &member_rows(&r.members),
        )),
        Format::Fields => {
            let mut s = fields_header(r.header.as_ref());
            for m in &r.members {
                s += &format!(
                    "\"ID\" : {}\n\"Name\" : {}\n",
                    m.id,
                    go_quote(m.name.as_bytes())
                );
                for u in &m.peer_ur_ls {
                    s += &format!("\"PeerURL\" : {}\n", go_quote(u.as_bytes()));
                }
                for u in &m.client_ur_ls {
                    s += &format!("\"ClientURL\" : {}\n", go_quote(u.as_bytes()));
                }
                s += &format!("\"IsLearner\" : {}\n\n", m.is_learner);
            }
            emit(&s)
        }
        Format::Simple => emit(
            &member_rows(&r.members)
                .iter()
                .map(|r| r.join(", ") + "\n")
                .collect::<String>(),
        ),
    }
}

/// The answer of remove/update/promote: `Member <id> <verb> cluster <id>`, or JSON.
fn change_out<M: prost::Message>(
    p: &Printer,
    r: &M,
    header: Option<&ResponseHeader>,
    members: &[Member],
    simple: String,
) -> Result<()> {
    match p.format {
        Format::Json => emit(
            &(json::Obj::new()
                .opt("header", json::header(header))
                .opt("members", json::members(members))
                .done()
                + "\n"),
        ),
        Format::Protobuf => emit_pb(r),
        Format::Simple => emit(&simple),
        f => Err(super::output::unsupported(f)),
    }
}

/// `member ...`.
pub async fn member(ctx: &Ctx, cmd: MemberCmd) -> Result<()> {
    let p = ctx.printer;
    let changes = [Format::Simple, Format::Json, Format::Protobuf];
    match cmd {
        MemberCmd::List { consistency } => {
            let linearizable = match consistency.as_str() {
                "l" => true,
                "s" => false,
                c => {
                    return Err(CliError::bad_args(format!(
                        "unknown consistency flag {c:?}"
                    )));
                }
            };
            let conn = ctx.connect().await?;
            let r = conn
                .call(
                    conn.cluster()
                        .member_list(MemberListRequest { linearizable }),
                )
                .await?;
            list_out(&p, &r)
        }
        MemberCmd::Add {
            peer_urls: flag,
            learner,
            args,
        } => {
            p.require(&changes)?;
            let name = match args.as_slice() {
                [] => return Err(CliError::bad_args("member name not provided")),
                [name] => name.clone(),
                _ => {
                    let mut ev = String::from("too many arguments");
                    for s in args.iter().filter(|s| s.to_lowercase().starts_with("http")) {
                        ev += &format!(", did you mean --peer-urls={s}");
                    }
                    return Err(CliError::bad_args(ev));
                }
            };
            let urls = peer_urls(&flag)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.cluster().member_add(MemberAddRequest {
                    peer_ur_ls: urls,
                    is_learner: learner,
                }))
                .await?;
            let new_id = r.member.as_ref().map_or(0, |m| m.id);
            let cluster_id = r.header.as_ref().map_or(0, |h| h.cluster_id);
            match p.format {
                Format::Json => emit(
                    &(json::Obj::new()
                        .opt("header", json::header(r.header.as_ref()))
                        .opt("member", r.member.as_ref().map(json::member))
                        .opt("members", json::members(&r.members))
                        .done()
                        + "\n"),
                ),
                Format::Protobuf => emit_pb(&r),
                _ => {
                    let list = conn
                        .call(
                            conn.cluster()
                                .member_list(MemberListRequest { linearizable: true }),
                        )
                        .await?;
                    let mut conf = Vec::new();
                    for m in &list.members {
                        for u in &m.peer_ur_ls {
                            let n = if m.id == new_id { &name } else { &m.name };
                            conf.push(format!("{n}={u}"));
                        }
                    }
                    emit(&format!(
                        "Member {new_id:16x} added to cluster {cluster_id:16x}\n\n\
                         ETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\n\
                         ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
                        go_quote(name.as_bytes()),
                        go_quote(conf.join(",").as_bytes()),
                        go_quote(flag.as_bytes()),
                    ))
                }
            }
        }
        MemberCmd::Remove { args } => {
            p.require(&changes)?;
            let id = member_id(&args)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.cluster().member_remove(MemberRemoveRequest { id }))
                .await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            change_out(
                &p,
                &r,
                r.header.as_ref(),
                &r.members,
                format!("Member {id:16x} removed from cluster {cid:16x}\n"),
            )
        }
        MemberCmd::Update {
            peer_urls: flag,
            args,
        } => {
            p.require(&changes)?;
            let id = member_id(&args)?;
            let urls = peer_urls(&flag)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.cluster().member_update(MemberUpdateRequest {
                    id,
                    peer_ur_ls: urls,
                }))
                .await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            change_out(
                &p,
                &r,
                r.header.as_ref(),
                &r.members,
                format!("Member {id:16x} updated in cluster {cid:16x}\n"),
            )
        }
        MemberCmd::Promote { args } => {
            p.require(&changes)?;
            let id = member_id(&args)?;
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.cluster().member_promote(MemberPromoteRequest { id }))
                .await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            change_out(
                &p,
                &r,
                r.header.as_ref(),
                &r.members,
                format!("Member {id:16x} promoted in cluster {cid:16x}\n"),
            )
        }
    }
}
