//! Accept the `:authority` that etcd's Go clients send when dialed with a URL.
//!
//! etcdctl 3.4 (`endpoint status --cluster`, `--endpoints=http://...`) sends the endpoint as
//! given, `http://host:port`, as the HTTP/2 `:authority`. Go's HTTP/2 server takes it; the Rust
//! one refuses the stream as malformed. This reader sits between the socket and the HTTP/2
//! server: it looks at the first header block of each HTTP/2 connection; when the authority is
//! well formed it steps aside for the rest of the connection, otherwise it re-encodes every
//! header block of that connection with the scheme stripped (mirroring the client's HPACK
//! table with a decoder, and keeping the server's in step with its own encoder).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const MAX_FRAME: usize = 16_384;

enum Mode {
    /// Waiting for the HTTP/2 preface.
    Sniff,
    /// HTTP/2: deciding on the first header block.
    Deciding,
    /// Re-encoding every header block.
    Rewrite,
    /// Not our business (HTTP/1, or a well-formed authority).
    Passthrough,
}

/// A header block being collected from HEADERS + CONTINUATION frames.
struct Pending {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    raw: Vec<u8>,
}

/// A stream whose incoming HTTP/2 header blocks get a well-formed `:authority`.
pub struct FixAuthority<S> {
    inner: S,
    mode: Mode,
    input: BytesMut,
    output: BytesMut,
    pending: Option<Pending>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl<S> FixAuthority<S> {
    /// Wrap a server-side connection.
    pub fn new(inner: S) -> Self {
        FixAuthority {
            inner,
            mode: Mode::Sniff,
            input: BytesMut::new(),
            output: BytesMut::new(),
            pending: None,
            decoder: Decoder::new(),
            encoder: Encoder::new(),
        }
    }

    fn pass_all(&mut self) {
        self.mode = Mode::Passthrough;
        let rest = self.input.split();
        self.output.extend_from_slice(&rest);
    }

    /// Move what can be decided from `input` to `output`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Passthrough => return self.pass_all(),
                Mode::Sniff => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        return self.pass_all();
                    }
                    if n < PREFACE.len() {
                        return;
                    }
                    let p = self.input.split_to(PREFACE.len());
                    self.output.extend_from_slice(&p);
                    self.mode = Mode::Deciding;
                }
                Mode::Deciding | Mode::Rewrite => {
                    if self.input.len() < 9 {
                        return;
                    }
                    let len = (usize::from(self.input[0]) << 16)
                        | (usize::from(self.input[1]) << 8)
                        | usize::from(self.input[2]);
                    if self.input.len() < 9 + len {
                        return;
                    }
                    let frame = self.input.split_to(9 + len);
                    self.frame(&frame);
                }
            }
        }
    }

    fn frame(&mut self, frame: &[u8]) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[9..];
        match kind {
            HEADERS => {
                let mut body = payload;
                let mut pad = 0usize;
                if flags & PADDED != 0 && !body.is_empty() {
                    pad = usize::from(body[0]);
                    body = &body[1..];
                }
                let mut priority = None;
                if flags & PRIORITY != 0 && body.len() >= 5 {
                    let mut p = [0u8; 5];
                    p.copy_from_slice(&body[..5]);
                    priority = Some(p);
                    body = &body[5..];
                }
                let body = &body[..body.len().saturating_sub(pad)];
                self.pending = Some(Pending {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    block: body.to_vec(),
                    raw: frame.to_vec(),
                });
            }
            CONTINUATION => match self.pending.as_mut() {
                Some(p) => {
                    p.block.extend_from_slice(payload);
                    p.raw.extend_from_slice(frame);
                }
                None => self.output.extend_from_slice(frame),
            },
            _ => {
                self.output.extend_from_slice(frame);
                return;
            }
        }
        if flags & END_HEADERS != 0
            && let Some(p) = self.pending.take()
        {
            self.header_block(p);
        }
    }

    fn header_block(&mut self, p: Pending) {
        let Ok(headers) = self.decoder.decode(&p.block) else {
            // Let the HTTP/2 server judge what we cannot read.
            self.output.extend_from_slice(&p.raw);
            return self.pass_all();
        };
        let bad = headers
            .iter()
            .any(|(n, v)| n == b":authority" && v.windows(3).any(|w| w == b"://"));
        if matches!(self.mode, Mode::Deciding) {
            if !bad {
                self.output.extend_from_slice(&p.raw);
                return self.pass_all();
            }
            self.mode = Mode::Rewrite;
        }
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(n, v)| {
                if n == b":authority" {
                    (n, strip_scheme(&v))
                } else {
                    (n, v)
                }
            })
            .collect();
        let block = self
            .encoder
            .encode(fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        self.emit_headers(&p, &block);
    }

    fn emit_headers(&mut self, p: &Pending, block: &[u8]) {
        let mut first = true;
        let mut rest = block;
        loop {
            let prio = if first { p.priority } else { None };
            let room = MAX_FRAME - if prio.is_some() { 5 } else { 0 };
            let n = rest.len().min(room);
            let (chunk, tail) = rest.split_at(n);
            let mut flags = 0u8;
            if tail.is_empty() {
                flags |= END_HEADERS;
            }
            if first && p.end_stream {
                flags |= END_STREAM;
            }
            if prio.is_some() {
                flags |= PRIORITY;
            }
            let len = chunk.len() + if prio.is_some() { 5 } else { 0 };
            self.output.put_u8((len >> 16) as u8);
            self.output.put_u8((len >> 8) as u8);
            self.output.put_u8(len as u8);
            self.output
                .put_u8(if first { HEADERS } else { CONTINUATION });
            self.output.put_u8(flags);
            self.output.put_u32(p.stream);
            if let Some(pr) = prio {
                self.output.extend_from_slice(&pr);
            }
            self.output.extend_from_slice(chunk);
            first = false;
            rest = tail;
            if rest.is_empty() {
                return;
            }
        }
    }
}

/// `http://host:port/...` → `host:port`.
fn strip_scheme(v: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(v);
    let after = s.split_once("://").map_or(s.as_ref(), |(_, a)| a);
    after.split('/').next().unwrap_or("").as_bytes().to_vec()
}

impl<S: AsyncRead + Unpin> AsyncRead for FixAuthority<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.output.is_empty() {
                let n = me.output.len().min(buf.remaining());
                buf.put_slice(&me.output[..n]);
                me.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(me.mode, Mode::Passthrough) && me.input.is_empty() {
                return Pin::new(&mut me.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        // End of stream: hand over whatever is left as it is.
                        me.pass_all();
                        if me.output.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    me.input.extend_from_slice(rb.filled());
                    me.process();
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FixAuthority<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client-port listener: TCP with no delay, connections wrapped in [`FixAuthority`].
pub struct ClientListener(pub TcpListener);

impl axum::serve::Listener for ClientListener {
    type Io = FixAuthority<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (FixAuthority::new(tcp), addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn headers_frame(block: &[u8], stream: u32) -> Vec<u8> {
        let mut f = vec![
            (block.len() >> 16) as u8,
            (block.len() >> 8) as u8,
            block.len() as u8,
            HEADERS,
            END_HEADERS,
        ];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(block);
        f
    }

    async fn run(input: Vec<u8>) -> Vec<u8> {
        let mut r = FixAuthority::new(std::io::Cursor::new(input));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        out
    }

    fn blocks(mut bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        bytes = &bytes[PREFACE.len()..];
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        while bytes.len() >= 9 {
            let len = (usize::from(bytes[0]) << 16)
                | (usize::from(bytes[1]) << 8)
                | usize::from(bytes[2]);
            if bytes[3] == HEADERS {
                out.push(dec.decode(&bytes[9..9 + len]).unwrap());
            }
            bytes = &bytes[9 + len..];
        }
        out
    }

    #[tokio::test]
    async fn rewrites_url_authorities_and_keeps_hpack_state() {
        let mut enc = Encoder::new();
        let h1: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Range"),
        ];
        let h2: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
        ];
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&enc.encode(h1), 1));
        input.extend(headers_frame(&enc.encode(h2), 3));
        let got = blocks(&run(input).await);
        assert_eq!(got.len(), 2);
        for b in &got {
            assert!(
                b.contains(&(b":authority".to_vec(), b"127.0.0.1:2379".to_vec())),
                "{b:?}"
            );
        }
        assert!(got[1].contains(&(
            b":path".to_vec(),
            b"/etcdserverpb.Maintenance/Status".to_vec()
        )));
    }

    #[tokio::test]
    async fn leaves_good_connections_and_http1_alone() {
        let mut enc = Encoder::new();
        let h: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"POST"), (b":authority", b"127.0.0.1:2379")];
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(&enc.encode(h), 1));
        input.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        assert_eq!(run(input.clone()).await, input);
        let http1 = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(run(http1.clone()).await, http1);
    }
}
