//! `txn`: a transaction read from stdin in etcdctl's grammar, three sections each ended by
//! an empty line (or the end of input):
//!
//! ```text
//! value("k") = "v"          compares: value, version|ver, create|c, mod|m, lease (hex)
//! mod("k") > "3"            operators: = == != > <
//!
//! put k v --prev-kv         success operations: put, get, del with their flags
//! get k --prefix
//!
//! del k                     failure operations
//! ```

use std::io::BufRead;

use clap::{ArgAction, Args, Parser};

use super::error::{CliError, Result};
use super::kv::{self, DelArgs, GetArgs, PutArgs};
use super::output::{Format, NOT_TABLE, Printer, emit, fields_header, show};
use super::{Ctx, json, parse_int};
use crate::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::request_op::Request;
use crate::pb::response_op::Response as Resp;
use crate::pb::{Compare, RequestOp, TxnRequest, TxnResponse};

/// `txn [options]`.
#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub interactive: bool,
    /// txn takes no arguments: the transaction is read from stdin
    #[arg(hide = true)]
    pub args: Vec<String>,
}

/// One operation line, parsed with the flags of the matching command.
#[derive(Debug, Parser)]
#[command(name = "txn", no_binary_name = true)]
enum OpLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// A cursor over one input line, for Go's `%q`-style quoted strings.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan {
            b: s.as_bytes(),
            i: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        let ok = self.b.get(self.i) == Some(&c);
        self.i += usize::from(ok);
        ok
    }

    /// A run of non-space characters.
    fn token(&mut self) -> Vec<u8> {
        let start = self.i;
        while self.i < self.b.len() && !self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        self.b[start..self.i].to_vec()
    }

    fn hex(&mut self, n: usize) -> Option<u32> {
        let s = std::str::from_utf8(self.b.get(self.i..self.i + n)?).ok()?;
        self.i += n;
        u32::from_str_radix(s, 16).ok()
    }

    /// A Go double-quoted string (with escapes) or back-quoted raw string.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        if self.eat(b'`') {
            let start = self.i;
            while self.i < self.b.len() && self.b[self.i] != b'`' {
                self.i += 1;
            }
            let s = self.b[start..self.i].to_vec();
            return self.eat(b'`').then_some(s);
        }
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'a' => out.push(7),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'v' => out.push(11),
                        b'\\' | b'"' | b'\'' => out.push(e),
                        b'x' => out.push(self.hex(2)? as u8),
                        b'0'..=b'7' => {
                            let s =
                                std::str::from_utf8(self.b.get(self.i - 1..self.i + 2)?).ok()?;
                            self.i += 2;
                            out.push(u8::try_from(u32::from_str_radix(s, 8).ok()?).ok()?);
                        }
                        b'u' | b'U' => {
                            let c = char::from_u32(self.hex(if e == b'u' { 4 } else { 8 })?)?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return None,
                    }
                }
                c => out.push(c),
            }
        }
    }
}

/// Split a line into arguments as etcdctl's `argify`: spaces separate, `"..."` (with Go
/// escapes) and `'...'` quote.
pub fn argify(line: &str) -> Result<Vec<String>> {
    let mut s = Scan::new(line);
    let mut args = Vec::new();
    loop {
        s.skip_ws();
        if s.at_end() {
            return Ok(args);
        }
        let arg = match s.b[s.i] {
            b'"' => s
                .quoted()
                .ok_or_else(|| CliError::invalid_input(format!("bad quoting in: {line}")))?,
            b'\'' => {
                s.i += 1;
                let start = s.i;
                while s.i < s.b.len() && s.b[s.i] != b'\'' {
                    s.i += 1;
                }
                let a = s.b[start..s.i].to_vec();
                s.i += 1;
                a
            }
            _ => s.token(),
        };
        args.push(String::from_utf8_lossy(&arg).into_owned());
    }
}

/// Parse a compare line such as `value("k") = "v"` or `mod("k") > "3"`.
pub fn parse_compare(line: &str) -> Result<Compare> {
    let malformed =
        |why: &str| CliError::invalid_input(format!("malformed comparison: {line}{why}"));
    let invalid =
        |why: &str| CliError::invalid_input(format!("invalid txn compare request: {line}{why}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed(""));
    };
    let mut s = Scan::new(rest);
    let key = s.quoted().ok_or_else(|| malformed(""))?;
    if !s.eat(b')') {
        return Err(malformed(""));
    }
    s.skip_ws();
    let op = String::from_utf8_lossy(&s.token()).into_owned();
    s.skip_ws();
    let val = s.quoted().ok_or_else(|| malformed(""))?;
    let result = match op.as_str() {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(invalid(&format!(" (unknown operator {op:?})"))),
    };
    let num = |base| parse_int(&String::from_utf8_lossy(&val), base).map_err(|_| invalid(""));
    let (target, union) = match target.trim() {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(num(10)?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(num(10)?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(num(10)?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(val.clone())),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(num(16)?)),
        t => return Err(malformed(&format!(" (unknown target {t})"))),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key,
        target_union: Some(union),
        range_end: Vec::new(),
    })
}

/// Parse an operation line such as `put k v` or `get k --prefix`.
pub fn parse_op(line: &str) -> Result<RequestOp> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CliError::invalid_input(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let op = OpLine::try_parse_from(&args)
        .map_err(|_| CliError::invalid_input(format!("invalid txn request: {line}")))?;
    let request = match op {
        OpLine::Put(a) => Request::RequestPut(kv::put_request(&a, None)?),
        OpLine::Get(a) => Request::RequestRange(kv::range_request(&a)?),
        OpLine::Del(a) => Request::RequestDeleteRange(kv::delete_request(&a)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Lines up to an empty line or the end of input, each parsed by `parse`.
fn section<T>(r: &mut dyn BufRead, parse: fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)
            .map_err(|e| CliError::invalid_input(e.to_string()))?;
        let line = line.trim();
        if line.is_empty() {
            return Ok(out);
        }
        out.push(parse(line)?);
    }
}

/// Read a whole transaction; with `interactive`, print etcdctl's prompts.
pub fn read_txn(r: &mut dyn BufRead, interactive: bool) -> Result<TxnRequest> {
    let prompt = |s: &str| {
        if interactive {
            emit(&format!("{s}\n"))
        } else {
            Ok(())
        }
    };
    prompt("compares:")?;
    let compare = section(r, parse_compare)?;
    prompt("success requests (get, put, del):")?;
    let success = section(r, parse_op)?;
    prompt("failure requests (get, put, del):")?;
    let failure = section(r, parse_op)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

/// A `txn` answer in the simple or fields format.
pub fn txn_text(p: &Printer, r: &TxnResponse) -> String {
    let fields = p.format == Format::Fields;
    let mut s = if fields {
        fields_header(r.header.as_ref()) + &format!("\"Succeeded\" : {}\n", r.succeeded)
    } else if r.succeeded {
        "SUCCESS\n".to_string()
    } else {
        "FAILURE\n".to_string()
    };
    for op in &r.responses {
        if !fields {
            s.push('\n');
        }
        s += &match &op.response {
            Some(Resp::ResponseRange(x)) => kv::range_text(p, x, false, false),
            Some(Resp::ResponsePut(x)) => kv::put_text(p, x),
            Some(Resp::ResponseDeleteRange(x)) => kv::delete_text(p, x),
            Some(Resp::ResponseTxn(x)) => txn_text(p, x),
            None => String::new(),
        };
    }
    s
}

/// `txn`.
pub async fn txn(ctx: &Ctx, a: TxnArgs) -> Result<()> {
    if !a.args.is_empty() {
        return Err(CliError::bad_args("txn command does not accept argument"));
    }
    ctx.printer.require(NOT_TABLE)?;
    let req = read_txn(&mut std::io::stdin().lock(), a.interactive)?;
    let conn = ctx.connect().await?;
    let resp = conn.call(conn.kv().txn(req)).await?;
    show(&ctx.printer, &resp, json::txn, txn_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        let c = parse_compare(r#"value("k1") = "v1""#).unwrap();
        assert_eq!(c.key, b"k1");
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v1".to_vec())));
        let c = parse_compare(r#"mod("k") > "3""#).unwrap();
        assert_eq!(
            (c.result, c.target_union),
            (
                CompareResult::Greater as i32,
                Some(TargetUnion::ModRevision(3))
            )
        );
        let c = parse_compare(r#"lease("k") = "1a""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Lease(26)));
        assert!(
            parse_compare(r#"bogus("a") = "b""#)
                .unwrap_err()
                .message
                .contains("unknown target bogus")
        );
        assert!(parse_compare(r#"c("a") = "x""#).is_err());
        assert!(parse_compare("put a b").is_err());
    }

    #[test]
    fn ops() {
        assert_eq!(
            argify(r#"put "a b" 'c d' e"#).unwrap(),
            ["put", "a b", "c d", "e"]
        );
        let op = parse_op("put k v --prev-kv").unwrap();
        assert!(matches!(op.request, Some(Request::RequestPut(p)) if p.prev_kv && p.value == b"v"));
        assert!(
            parse_op("foo a")
                .unwrap_err()
                .message
                .contains("invalid txn request")
        );
        assert!(parse_op("put").is_err());
        let mut input: &[u8] = b"value(\"a\") = \"1\"\n\nput a 2\n\nget a\n";
        let t = read_txn(&mut input, false).unwrap();
        assert_eq!(
            (t.compare.len(), t.success.len(), t.failure.len()),
            (1, 1, 1)
        );
    }
}
