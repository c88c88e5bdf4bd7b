//! `watch`: one watch from the command line, or interactive mode (`-i`) reading
//! `watch [options] <key> [range_end]` and `progress` lines from stdin, all watches sharing
//! one gRPC stream. Events print as etcdctl's (`PUT`/`DELETE`, previous key-value with
//! `--prev-kv`, then the key-value); `-- command args` runs a command for every event with
//! `ETCD_WATCH_*` in its environment.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use clap::{ArgAction, Args, Parser};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use super::client::Conn;
use super::error::{CliError, ExitKind, Result};
use super::kv::prefix_end;
use super::output::{
    Format, NOT_TABLE, Printer, emit, emit_pb, fields_header, fields_kv, go_list, go_quote,
    simple_kv,
};
use super::txn::argify;
use super::{Ctx, json};
use crate::pb::mvccpb::Event;
use crate::pb::mvccpb::event::EventType;
use crate::pb::watch_request::RequestUnion;
use crate::pb::{WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse};

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub progress_notify: bool,
    /// Key or prefix to watch
    #[arg(env = "ETCDCTL_WATCH_KEY")]
    pub key: Option<String>,
    /// End of the watched range
    #[arg(env = "ETCDCTL_WATCH_RANGE_END")]
    pub range_end: Option<String>,
    /// Command to run for every event (after `--`)
    #[arg(last = true)]
    pub exec: Vec<String>,
}

/// One `watch ...` line of interactive mode.
#[derive(Debug, Parser)]
#[command(name = "watch")]
struct WatchLine {
    #[command(flatten)]
    args: WatchArgs,
}

/// The create request of watch arguments.
fn create_request(a: &WatchArgs) -> Result<WatchRequest> {
    let Some(key) = &a.key else {
        return Err(CliError::bad_args("bad number of arguments"));
    };
    let key = key.clone().into_bytes();
    let (key, range_end) = match (&a.range_end, a.prefix) {
        (Some(_), true) => {
            return Err(CliError::bad_args(
                "`range_end` and `--prefix` are mutually exclusive",
            ));
        }
        (Some(end), false) => (key, end.clone().into_bytes()),
        (None, true) if key.is_empty() => (vec![0], vec![0]),
        (None, true) => {
            let end = prefix_end(&key);
            (key, end)
        }
        (None, false) => (key, Vec::new()),
    };
    Ok(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key,
            range_end,
            start_revision: a.rev,
            progress_notify: a.progress_notify,
            prev_kv: a.prev_kv,
            ..Default::default()
        })),
    })
}

fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

/// The bidirectional Watch stream, pumped by a task.
struct Session {
    tx: mpsc::Sender<WatchRequest>,
    rx: mpsc::Receiver<Result<WatchResponse, Status>>,
}

impl Session {
    /// Open the stream with its first request already queued (etcd answers nothing before).
    fn open(conn: &Conn, first: WatchRequest) -> Session {
        let (tx, req_rx) = mpsc::channel(16);
        tx.try_send(first).expect("a fresh channel has room");
        let (resp_tx, rx) = mpsc::channel(64);
        let mut client = conn.watch();
        tokio::spawn(async move {
            let mut req = Request::new(ReceiverStream::new(req_rx));
            req.metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
            match client.watch(req).await {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    // Forward messages until the end, an error, or nobody listening.
                    while let Some(item) = stream.message().await.transpose() {
                        let end = item.is_err();
                        if resp_tx.send(item).await.is_err() || end {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = resp_tx.send(Err(e)).await;
                }
            }
        });
        Session { tx, rx }
    }
}

async fn next(s: &mut Option<Session>) -> Option<Result<WatchResponse, Status>> {
    match s {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

fn type_name(t: i32) -> String {
    EventType::try_from(t)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Why a canceled watch ended, as clientv3 words it.
fn cancel_error(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".into()
    } else if !r.cancel_reason.is_empty() {
        r.cancel_reason.clone()
    } else {
        "etcdserver: mvcc: required revision is a future revision".into()
    }
}

/// A watch response in the chosen format.
fn display(p: &Printer, r: &WatchResponse) -> Result<()> {
    match p.format {
        Format::Json => {
            let o = json::Obj::new()
                .raw("Header", json::header_fields(r.header.as_ref()).done())
                .raw(
                    "Events",
                    json::array_or_null(r.events.iter().map(json::event).collect()),
                )
                .num("CompactRevision", r.compact_revision)
                .boolean("Canceled", r.canceled)
                .boolean("Created", r.created);
            emit(&(o.done() + "\n"))
        }
        Format::Protobuf => emit_pb(r),
        Format::Fields => {
            let mut s = fields_header(r.header.as_ref());
            for e in &r.events {
                s += &format!("\"Type\" : {}\n", type_name(e.r#type));
                if let Some(prev) = &e.prev_kv {
                    s += &fields_kv("Prev", prev);
                }
                s += &fields_kv("", &e.kv.clone().unwrap_or_default());
            }
            emit(&s)
        }
        Format::Simple | Format::Table => {
            let mut s = String::new();
            for e in &r.events {
                s += &type_name(e.r#type);
                s.push('\n');
                if let Some(prev) = &e.prev_kv {
                    s += &simple_kv(p.hex, false, prev);
                }
                s += &simple_kv(p.hex, false, &e.kv.clone().unwrap_or_default());
            }
            emit(&s)
        }
    }
}

/// Run `exec` for one event, as etcdctl does.
async fn run_exec(exec: &[String], rev: i64, e: &Event) -> Result<()> {
    let kv = e.kv.clone().unwrap_or_default();
    let status = tokio::process::Command::new(&exec[0])
        .args(&exec[1..])
        .env("ETCD_WATCH_REVISION", rev.to_string())
        .env(
            "ETCD_WATCH_EVENT_TYPE",
            format!("\"{}\"", type_name(e.r#type)),
        )
        .env("ETCD_WATCH_KEY", go_quote(&kv.key))
        .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
        .status()
        .await;
    let why = match status {
        Ok(s) if s.success() => return Ok(()),
        Ok(s) => format!("exit status {}", s.code().unwrap_or(-1)),
        Err(e) => e.to_string(),
    };
    let quoted: Vec<String> = exec.iter().map(|a| go_quote(a.as_bytes())).collect();
    eprintln!("command {} error ({why})", go_list(&quoted));
    Err(CliError::reported(ExitKind::Error))
}

/// Prints responses of one stream; remembers each watch's exec command.
struct Watcher {
    printer: Printer,
    pending_exec: VecDeque<Vec<String>>,
    exec: HashMap<i64, Vec<String>>,
    fragments: Option<WatchResponse>,
}

impl Watcher {
    fn new(printer: Printer) -> Self {
        Watcher {
            printer,
            pending_exec: VecDeque::new(),
            exec: HashMap::new(),
            fragments: None,
        }
    }

    /// Handle one response; true when it canceled its watch.
    async fn handle(&mut self, r: WatchResponse) -> Result<bool> {
        if r.created {
            // Creations answer in request order.
            let exec = self.pending_exec.pop_front().unwrap_or_default();
            self.exec.insert(r.watch_id, exec);
            if r.events.is_empty() && !r.canceled {
                return Ok(false);
            }
        }
        let r = match self.fragments.take() {
            Some(mut acc) => {
                acc.events.extend(r.events);
                acc.fragment = r.fragment;
                acc
            }
            None => r,
        };
        if r.fragment {
            self.fragments = Some(r);
            return Ok(false);
        }
        if r.canceled {
            eprintln!("watch was canceled ({})", cancel_error(&r));
        }
        let progress = r.events.is_empty() && !r.canceled && !r.created && r.compact_revision == 0;
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        if progress && rev != 0 {
            emit(&format!("progress notify: {rev}\n"))?;
        }
        display(&self.printer, &r)?;
        if let Some(exec) = self.exec.get(&r.watch_id).filter(|e| !e.is_empty()) {
            for e in &r.events {
                run_exec(exec, rev, e).await?;
            }
        }
        Ok(r.canceled)
    }

    /// The request of one interactive line, or `None` (the problem printed) if it is invalid.
    fn line(&mut self, l: &str) -> Option<WatchRequest> {
        let args = match argify(l) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("Invalid command {l} ({e})");
                return None;
            }
        };
        match args.first().map(String::as_str) {
            None => eprintln!("Invalid command: {l} (watch and progress supported)"),
            Some("watch") => match WatchLine::try_parse_from(&args) {
                Ok(w) => match create_request(&w.args) {
                    Ok(req) => {
                        self.pending_exec.push_back(w.args.exec);
                        return Some(req);
                    }
                    Err(_) if w.args.key.is_none() => {
                        eprintln!("Invalid command {l} (command type or key is not provided)")
                    }
                    Err(e) => eprintln!("Invalid command {l} ({e})"),
                },
                Err(e) => {
                    let msg = e.to_string();
                    eprintln!(
                        "Invalid command {l} ({})",
                        msg.lines().next().unwrap_or_default()
                    );
                }
            },
            Some("progress") => return Some(progress_request()),
            Some(_) => eprintln!("Invalid command {l} (only support watch)"),
        }
        None
    }
}

/// `watch`.
pub async fn watch(ctx: &Ctx, a: WatchArgs) -> Result<()> {
    ctx.printer.require(NOT_TABLE)?;
    if a.interactive {
        return interactive(ctx).await;
    }
    let req = create_request(&a)?;
    let conn = ctx.connect().await?;
    let mut session = Session::open(&conn, req);
    let mut w = Watcher::new(ctx.printer);
    w.pending_exec.push_back(a.exec);
    // The creation must be confirmed within the command timeout: never hang on a dead server.
    let mut item = tokio::time::timeout(ctx.command_timeout, session.rx.recv())
        .await
        .map_err(|_| CliError::deadline())?;
    while let Some(i) = item {
        if w.handle(i?).await? {
            break;
        }
        item = session.rx.recv().await;
    }
    drop(session.tx);
    Err(CliError::new(
        ExitKind::Interrupted,
        "watch is canceled by the server",
    ))
}

/// `watch -i`: watches and progress requests from stdin lines. At the end of input, keeps
/// printing if a watch was started (etcdctl exits), else fails as etcdctl does.
async fn interactive(ctx: &Ctx) -> Result<()> {
    let conn = ctx.connect().await?;
    let (line_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if line_tx.blocking_send(l).is_err() {
                break;
            }
        }
    });
    let mut session: Option<Session> = None;
    let mut w = Watcher::new(ctx.printer);
    let mut eof = false;
    loop {
        tokio::select! {
            line = lines.recv(), if !eof => match line {
                None if session.is_none() => {
                    return Err(CliError::invalid_input("Error reading watch request line: EOF"));
                }
                None => eof = true,
                Some(l) => {
                    let Some(req) = w.line(&l) else { continue };
                    match &session {
                        Some(s) => {
                            if s.tx.send(req).await.is_err() {
                                return Err(CliError::new(ExitKind::Interrupted, "watch is canceled by the server"));
                            }
                        }
                        None => session = Some(Session::open(&conn, req)),
                    }
                }
            },
            item = next(&mut session) => match item {
                None => return Err(CliError::new(ExitKind::Interrupted, "watch is canceled by the server")),
                Some(item) => {
                    w.handle(item?).await?;
                }
            },
        }
    }
}
