//! `put`, `get`, `del` and `compaction`: their flags, the requests they build (shared with
//! `txn`, whose operations are written as these commands) and their printed output.

use std::io::Read;

use clap::{ArgAction, Args};

use super::error::{CliError, ExitKind, Result};
use super::output::{Format, NOT_TABLE, Printer, fields_header, fields_kv, show, simple_kv};
use super::{Ctx, json, parse_int};
use crate::pb::range_request::{SortOrder, SortTarget};
use crate::pb::{
    CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse,
};

/// `put [options] <key> <value>`: the value is read from stdin when omitted.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub ignore_lease: bool,
    /// <key> [value]; a value beginning with '-' goes after '--'
    #[arg(value_name = "KEY [VALUE]")]
    pub args: Vec<String>,
}

/// `get [options] <key> [range_end]`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub keys_only: bool,
    /// Get only the count
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub print_value_only: bool,
    /// <key> [range_end]
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<String>,
}

/// `del [options] <key> [range_end]`.
#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub from_key: bool,
    /// <key> [range_end]
    #[arg(value_name = "KEY [RANGE_END]")]
    pub args: Vec<String>,
}

/// `compaction [options] <revision>`.
#[derive(Debug, Clone, Args)]
pub struct CompactionArgs {
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub physical: bool,
    /// <revision>
    #[arg(value_name = "REVISION")]
    pub args: Vec<String>,
}

/// The end of the range of keys starting with `key` (`\0` = every key when none is larger).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The `PutRequest` of `put` arguments; `stdin` supplies a missing value (absent in `txn`).
pub fn put_request(a: &PutArgs, stdin: Option<&mut dyn Read>) -> Result<PutRequest> {
    let usage = "put command needs 1 argument and input from stdin or 2 arguments";
    let Some(key) = a.args.first() else {
        return Err(CliError::bad_args(usage));
    };
    if a.ignore_value && a.args.len() > 1 {
        return Err(CliError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    if a.args.len() > 2 {
        return Err(CliError::bad_args(usage));
    }
    let value = if a.ignore_value {
        Vec::new()
    } else if let Some(v) = a.args.get(1) {
        v.clone().into_bytes()
    } else {
        let mut buf = Vec::new();
        let read = stdin
            .map(|r| r.read_to_end(&mut buf).is_ok())
            .unwrap_or(false);
        if !read || buf.is_empty() {
            return Err(CliError::bad_args(usage));
        }
        buf
    };
    let lease = parse_int(&a.lease, 16)
        .map_err(|e| CliError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: key.clone().into_bytes(),
        value,
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// Key and range end of a `[key, range_end)`, `--prefix` or `--from-key` selection.
fn key_range(
    args: &[String],
    prefix: bool,
    from_key: bool,
    usage: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if args.is_empty() || args.len() > 2 {
        return Err(CliError::bad_args(usage));
    }
    if prefix && from_key {
        return Err(CliError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let key = args[0].clone().into_bytes();
    if args.len() > 1 {
        if prefix || from_key {
            return Err(CliError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        return Ok((key, args[1].clone().into_bytes()));
    }
    Ok(match (prefix, from_key, key.is_empty()) {
        (true, _, true) | (_, true, true) => (vec![0], vec![0]),
        (true, _, false) => {
            let end = prefix_end(&key);
            (key, end)
        }
        (_, true, false) => (key, vec![0]),
        _ => (key, Vec::new()),
    })
}

/// The `RangeRequest` of `get` arguments.
pub fn range_request(a: &GetArgs) -> Result<RangeRequest> {
    let usage = "get command needs one argument as key and an optional argument as range_end";
    let (key, range_end) = key_range(&a.args, a.prefix, a.from_key, usage)?;
    let serializable = match a.consistency.as_str() {
        "s" => true,
        "l" => false,
        c => {
            return Err(CliError::new(
                ExitKind::BadFeature,
                format!("unknown consistency flag {c:?}"),
            ));
        }
    };
    let order = match a.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CliError::new(
                ExitKind::BadFeature,
                format!("bad sort order {}", a.order),
            ));
        }
    };
    let target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CliError::new(
                ExitKind::BadFeature,
                format!("bad sort target {}", a.sort_by),
            ));
        }
    };
    // As clientv3's WithSort: ascending by key is the server's natural order.
    let order = if target == SortTarget::Key && order == SortOrder::Ascend {
        SortOrder::None
    } else {
        order
    };
    if a.keys_only && a.count_only {
        return Err(CliError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    Ok(RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: a.rev.max(0),
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    })
}

/// The `DeleteRangeRequest` of `del` arguments.
pub fn delete_request(a: &DelArgs) -> Result<DeleteRangeRequest> {
    let usage = "del command needs one argument as key and an optional argument as range_end";
    let (key, range_end) = key_range(&a.args, a.prefix, a.from_key, usage)?;
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    })
}

/// A `put` answer in the simple or fields format.
pub fn put_text(p: &Printer, r: &PutResponse) -> String {
    if p.format == Format::Fields {
        fields_header(r.header.as_ref())
            + &r.prev_kv
                .as_ref()
                .map(|kv| fields_kv("Prev", kv))
                .unwrap_or_default()
    } else {
        "OK\n".to_string()
            + &r.prev_kv
                .as_ref()
                .map(|kv| simple_kv(p.hex, false, kv))
                .unwrap_or_default()
    }
}

/// A `get` answer in the simple or fields format.
pub fn range_text(p: &Printer, r: &RangeResponse, value_only: bool, count_only: bool) -> String {
    if p.format == Format::Fields {
        let mut s = fields_header(r.header.as_ref());
        for kv in &r.kvs {
            s += &fields_kv("", kv);
        }
        s + &format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count)
    } else if count_only {
        format!("{}\n", r.count)
    } else {
        r.kvs
            .iter()
            .map(|kv| simple_kv(p.hex, value_only, kv))
            .collect()
    }
}

/// A `del` answer in the simple or fields format.
pub fn delete_text(p: &Printer, r: &DeleteRangeResponse) -> String {
    if p.format == Format::Fields {
        let mut s = fields_header(r.header.as_ref()) + &format!("\"Deleted\" : {}\n", r.deleted);
        for kv in &r.prev_kvs {
            s += &fields_kv("Prev", kv);
        }
        s
    } else {
        format!("{}\n", r.deleted)
            + &r.prev_kvs
                .iter()
                .map(|kv| simple_kv(p.hex, false, kv))
                .collect::<String>()
    }
}

/// `put`.
pub async fn put(ctx: &Ctx, a: PutArgs) -> Result<()> {
    ctx.printer.require(NOT_TABLE)?;
    let req = put_request(&a, Some(&mut std::io::stdin()))?;
    let conn = ctx.connect().await?;
    let resp = conn.call(conn.kv().put(req)).await?;
    show(&ctx.printer, &resp, json::put, put_text)
}

/// `get`.
pub async fn get(ctx: &Ctx, a: GetArgs) -> Result<()> {
    ctx.printer.require(NOT_TABLE)?;
    let req = range_request(&a)?;
    if a.print_value_only && ctx.printer.format != Format::Simple {
        return Err(CliError::bad_args(
            "print-value-only is only for `--write-out=simple`",
        ));
    }
    let conn = ctx.connect().await?;
    let resp = conn.call(conn.kv().range(req)).await?;
    show(&ctx.printer, &resp, json::range, |p, r| {
        range_text(p, r, a.print_value_only, a.count_only)
    })
}

/// `del`.
pub async fn del(ctx: &Ctx, a: DelArgs) -> Result<()> {
    ctx.printer.require(NOT_TABLE)?;
    let req = delete_request(&a)?;
    let conn = ctx.connect().await?;
    let resp = conn.call(conn.kv().delete_range(req)).await?;
    show(&ctx.printer, &resp, json::delete, delete_text)
}

/// `compaction`: prints `compacted revision N` whatever the output format.
pub async fn compaction(ctx: &Ctx, a: CompactionArgs) -> Result<()> {
    if a.args.len() != 1 {
        return Err(CliError::bad_args("compaction command needs 1 argument"));
    }
    let revision = parse_int(&a.args[0], 10).map_err(CliError::error)?;
    let conn = ctx.connect().await?;
    conn.call(conn.kv().compact(CompactionRequest {
        revision,
        physical: a.physical,
    }))
    .await?;
    super::output::emit(&format!("compacted revision {revision}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
