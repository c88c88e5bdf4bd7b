//! Output formats as etcdctl prints them: `simple`, `fields` and `table` helpers (the JSON
//! printer is in [`super::json`]), plus the Go formatting etcdctl's text inherits: `%q`
//! quoting, `--hex` escapes, humanized byte sizes, tablewriter tables.

use std::io::Write;

use super::error::{CliError, ExitKind, Result};
use crate::pb::{KeyValue, ResponseHeader};

/// `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (default).
    Simple,
    /// One JSON document per response, as etcdctl's (protobuf field names, base64 bytes).
    Json,
    /// `"Field" : value` lines.
    Fields,
    /// A bordered table (member list, endpoint status/health/hashkv, snapshot status).
    Table,
    /// The raw protobuf bytes of the response.
    Protobuf,
}

impl Format {
    /// Parse a `--write-out` value.
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "fields" => Ok(Format::Fields),
            "table" => Ok(Format::Table),
            "protobuf" => Ok(Format::Protobuf),
            _ => Err(CliError::new(
                ExitKind::BadFeature,
                "unsupported output format",
            )),
        }
    }

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// The chosen output format and `--hex`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `-w`.
    pub format: Format,
    /// `--hex`: print keys and values as `\x..` escapes (simple format).
    pub hex: bool,
}

impl Printer {
    /// Fail (before sending anything) when a command cannot print in the chosen format.
    pub fn require(&self, supported: &[Format]) -> Result<()> {
        if supported.contains(&self.format) {
            Ok(())
        } else {
            Err(unsupported(self.format))
        }
    }
}

/// etcdctl's `<format> not supported as output format`.
pub fn unsupported(f: Format) -> CliError {
    CliError::new(
        ExitKind::BadFeature,
        format!("{} not supported as output format", f.name()),
    )
}

/// Formats every command but the table-only ones supports.
pub const NOT_TABLE: &[Format] = &[
    Format::Simple,
    Format::Json,
    Format::Fields,
    Format::Protobuf,
];

/// Write to stdout and flush; a closed stdout ends the command quietly.
pub fn emit(s: &str) -> Result<()> {
    emit_bytes(s.as_bytes())
}

/// Write raw bytes to stdout and flush.
pub fn emit_bytes(b: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b)
        .and_then(|_| out.flush())
        .map_err(|_| CliError::reported(ExitKind::Io))
}

/// A protobuf message's bytes (`-w protobuf`).
pub fn emit_pb<M: prost::Message>(m: &M) -> Result<()> {
    emit_bytes(&m.encode_to_vec())
}

/// Print one response: JSON and protobuf generically, simple and fields by `text`.
pub fn show<M: prost::Message>(
    p: &Printer,
    m: &M,
    json: impl Fn(&M) -> String,
    text: impl Fn(&Printer, &M) -> String,
) -> Result<()> {
    match p.format {
        Format::Json => emit(&(json(m) + "\n")),
        Format::Protobuf => emit_pb(m),
        Format::Table => Err(unsupported(Format::Table)),
        Format::Simple | Format::Fields => emit(&text(p, m)),
    }
}

/// A table as Go's tablewriter draws it: `+---+` borders, upper-case centered headers,
/// right-aligned cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line: String = width
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = line.clone();
    for (i, h) in header.iter().enumerate() {
        let h = h.to_uppercase();
        let gap = width[i] - h.chars().count();
        let left = gap / 2;
        out += &format!("| {}{}{} ", " ".repeat(left), h, " ".repeat(gap - left));
    }
    out += "|\n";
    out += &line;
    for row in rows {
        for (i, w) in width.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            out += &format!("| {}{} ", " ".repeat(w - cell.chars().count()), cell);
        }
        out += "|\n";
    }
    out += &line;
    out
}

/// Go's `%q` of a byte string: printable UTF-8 kept, the rest escaped.
pub fn go_quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

/// Bytes as text for the simple printer: raw (lossy UTF-8), or `\x..` escapes with `--hex`.
pub fn text(hex: bool, b: &[u8]) -> String {
    if hex {
        b.iter().map(|x| format!("\\x{x:02x}")).collect()
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<&str> = items.iter().map(|s| s.as_ref()).collect();
    format!("[{}]", inner.join(" "))
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`25 kB`, `1.2 MB`).
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// A key-value in the simple format: key line (unless `value_only`), value line.
pub fn simple_kv(hex: bool, value_only: bool, kv: &KeyValue) -> String {
    let mut s = String::new();
    if !value_only {
        s += &text(hex, &kv.key);
        s.push('\n');
    }
    s += &text(hex, &kv.value);
    s.push('\n');
    s
}

/// The response header in the fields format.
pub fn fields_header(h: Option<&ResponseHeader>) -> String {
    let d = ResponseHeader::default();
    let h = h.unwrap_or(&d);
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// A key-value in the fields format, field names prefixed by `pfx` (`Prev`).
pub fn fields_kv(pfx: &str, kv: &KeyValue) -> String {
    format!(
        "\"{pfx}Key\" : {}\n\"{pfx}CreateRevision\" : {}\n\"{pfx}ModRevision\" : {}\n\"{pfx}Version\" : {}\n\
         \"{pfx}Value\" : {}\n\"{pfx}Lease\" : {}\n",
        go_quote(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        go_quote(&kv.value),
        kv.lease
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize() {
        assert_eq!(humanize_bytes(24576), "25 kB");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(323584), "324 kB");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote(b"a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(go_quote(&[0xff, b'x']), "\"\\xffx\"");
        assert_eq!(text(true, b"fo"), "\\x66\\x6f");
    }

    #[test]
    fn tables() {
        let t = table(
            &["endpoint", "hash"],
            &[vec!["127.0.0.1:23790".into(), "759217274".into()]],
        );
        assert_eq!(
            t,
            "+-----------------+-----------+\n|    ENDPOINT     |   HASH    |\n\
             +-----------------+-----------+\n| 127.0.0.1:23790 | 759217274 |\n\
             +-----------------+-----------+\n"
        );
    }
}
