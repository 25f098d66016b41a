//! etcdctl 3.4 reaches some endpoints through the gRPC target `passthrough:///http://host:port`
//! (`endpoint status --cluster`, for one), so it sends `:authority: http://host:port`. Go's
//! HTTP/2 server takes that; hyper's refuses the request as malformed (RST_STREAM
//! PROTOCOL_ERROR), and keeps doing so by design. So client connections pass through this
//! filter: it follows the HTTP/2 frames the client sends, decodes their header blocks (HPACK)
//! and rewrites an :authority that holds a scheme, `http://host:port` → `http--@host:port`
//! (the scheme becomes user info). The rewrite keeps the length, so the entry the client's
//! encoder adds to its HPACK table and the one hyper's decoder adds have the same size and are
//! evicted alike, and later references to it find the repaired value. Every other byte passes
//! unchanged, and a connection that is not HTTP/2 with prior knowledge (HTTP/1: /health,
//! /metrics) or that the filter cannot follow is passed through as it is.
//!
//! Following a connection costs (decoding every header block: a third of the puts a
//! connection carries, measured), so only connections that need it are followed: a gRPC
//! client sends one authority for all the calls of a connection, so when the first header
//! block needs no repair, the rest of the connection passes untouched.
//!
//! What the filter holds back is bounded by the limits hyper enforces behind it: a frame
//! longer than the frame size hyper advertises, or a header block of more frames than hyper
//! accepts, makes the filter step aside and pass everything on as it is, so that hyper refuses
//! it (FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM) and closes the connection. A client can never make
//! the filter keep more than one frame and one bounded header block.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer must accept, and the one hyper advertises: a client may
/// send nothing longer.
const MAX_FRAME: usize = 16_384;
/// The most frames of one header block hyper takes: HEADERS plus max(5, 1.25 × header list
/// size / frame size) CONTINUATIONs, with its 16 KiB header list (h2's flood protection).
const MAX_BLOCK_FRAMES: usize = 6;
/// SETTINGS_HEADER_TABLE_SIZE as hyper leaves it.
const TABLE_SIZE: usize = 4096;

/// The names of HPACK's static table (RFC 7541 Appendix A), index 1 first: the filter needs
/// names only (which one is :authority, and entry sizes).
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// A client connection with its :authority repaired on the way in; writes go straight through.
pub struct AuthorityFix<IO> {
    io: IO,
    filter: Filter,
    /// Filtered bytes not yet read, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        AuthorityFix { io, filter: Filter::default(), out: Vec::new(), out_pos: 0 }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                return Poll::Ready(Ok(()));
            }
            this.out.clear();
            this.out_pos = 0;
            if this.filter.mode == Mode::Passthrough {
                // Nothing held back: straight into the caller's buffer, at no cost.
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    // The end: whatever is held back (an incomplete frame) goes as it is.
                    this.filter.finish(&mut this.out);
                    if this.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => this.filter.push(rb.filled(), &mut this.out),
                other => return other,
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[derive(Default, PartialEq)]
enum Mode {
    /// Matching the client preface, so many bytes matched so far.
    #[default]
    Preface,
    Frames,
    Passthrough,
}

/// A header block whose CONTINUATION frames are still to come.
struct Block {
    raw: Vec<u8>,
    frames: usize,
    fragment: Vec<u8>,
    flags: u8,
    stream: [u8; 4],
    priority: Option<[u8; 5]>,
}

#[derive(Default)]
struct Filter {
    mode: Mode,
    matched: usize,
    pending: Vec<u8>,
    block: Option<Block>,
    table: Table,
    /// The connection's first header block needed a repair: every later one is followed.
    repairing: bool,
}

#[derive(Debug)]
struct Malformed;

impl Filter {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if self.mode == Mode::Preface {
            let n = input.len().min(PREFACE.len() - self.matched);
            let matches = input[..n] == PREFACE[self.matched..self.matched + n];
            out.extend_from_slice(&input[..n]);
            input = &input[n..];
            self.matched += n;
            if !matches {
                self.mode = Mode::Passthrough;
            } else if self.matched == PREFACE.len() {
                self.mode = Mode::Frames;
            }
        }
        if self.mode == Mode::Passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let mut at = 0;
        while self.mode == Mode::Frames && self.pending.len() - at >= FRAME_HEADER {
            let p = &self.pending[at..];
            let len = u32::from_be_bytes([0, p[0], p[1], p[2]]) as usize;
            if len > MAX_FRAME {
                // hyper refuses it; waiting for its bytes would only hold them here.
                self.give_up(out);
                break;
            }
            if p.len() < FRAME_HEADER + len {
                break;
            }
            let frame = p[..FRAME_HEADER + len].to_vec();
            at += frame.len();
            if self.follow(&frame, out).is_err() {
                self.give_up(out);
                out.extend_from_slice(&frame);
            }
        }
        self.pending.drain(..at);
        if self.mode == Mode::Passthrough {
            out.append(&mut self.pending);
        }
    }

    /// Stops following the connection: what is held back goes out unchanged. The rewrites
    /// made so far kept every table size, so hyper's view stays consistent.
    fn give_up(&mut self, out: &mut Vec<u8>) {
        self.mode = Mode::Passthrough;
        if let Some(b) = self.block.take() {
            out.extend_from_slice(&b.raw);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.give_up(out);
        out.append(&mut self.pending);
    }

    /// Passes or holds one frame. An error leaves the frame out of `out` and of any held block.
    fn follow(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
        let (kind, flags) = (frame[3], frame[4]);
        let payload = &frame[FRAME_HEADER..];
        match (kind, self.block.as_mut()) {
            (HEADERS, None) => {
                let mut from = 0;
                let mut to = payload.len();
                if flags & PADDED != 0 {
                    let pad = *payload.first().ok_or(Malformed)? as usize;
                    from = 1;
                    to = to.checked_sub(pad).ok_or(Malformed)?;
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    priority = Some(payload.get(from..from + 5).ok_or(Malformed)?.try_into().map_err(|_| Malformed)?);
                    from += 5;
                }
                let fragment = payload.get(from..to).ok_or(Malformed)?.to_vec();
                let stream = frame[5..9].try_into().map_err(|_| Malformed)?;
                self.block = Some(Block { raw: frame.to_vec(), frames: 1, fragment, flags, stream, priority });
            }
            // More than hyper takes: it refuses the block (and the connection) itself.
            (CONTINUATION, Some(b)) if b.frames >= MAX_BLOCK_FRAMES => return Err(Malformed),
            (CONTINUATION, Some(b)) => {
                b.raw.extend_from_slice(frame);
                b.fragment.extend_from_slice(payload);
                b.frames += 1;
            }
            (HEADERS | CONTINUATION, _) => return Err(Malformed),
            // No other frame may come between a HEADERS frame and its continuations.
            (_, Some(_)) => return Err(Malformed),
            (_, None) => {
                out.extend_from_slice(frame);
                return Ok(());
            }
        }
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let Some(b) = self.block.take() else { return Ok(()) };
        match self.table.rewrite(&b.fragment) {
            Ok(None) => {
                out.extend_from_slice(&b.raw);
                if !self.repairing {
                    self.mode = Mode::Passthrough;
                }
            }
            Ok(Some(fragment)) if !self.repairing => {
                self.repairing = true;
                emit(&b, &fragment, out);
            }
            Ok(Some(fragment)) => emit(&b, &fragment, out),
            Err(Malformed) => {
                out.extend_from_slice(&b.raw);
                self.mode = Mode::Passthrough;
            }
        }
        Ok(())
    }
}

/// Writes a rewritten header block as HEADERS (+ CONTINUATION) frames, without padding.
fn emit(b: &Block, fragment: &[u8], out: &mut Vec<u8>) {
    let prio_len = if b.priority.is_some() { 5 } else { 0 };
    let first = fragment.len().min(MAX_FRAME - prio_len);
    let mut chunks = vec![&fragment[..first]];
    chunks.extend(fragment[first..].chunks(MAX_FRAME));
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (HEADERS, b.flags & (END_STREAM | PRIORITY)) } else { (CONTINUATION, 0) };
        if i == last {
            flags |= END_HEADERS;
        }
        let prio: &[u8] = match (i, &b.priority) {
            (0, Some(p)) => p,
            _ => &[],
        };
        let len = (prio.len() + chunk.len()) as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&b.stream);
        out.extend_from_slice(prio);
        out.extend_from_slice(chunk);
    }
}

/// The client encoder's dynamic table, as far as the filter needs it.
struct Table {
    entries: VecDeque<(Vec<u8>, usize)>,
    size: usize,
    max: usize,
    /// Built on first use: it costs a few hundred map inserts.
    huffman: Option<fluke_hpack::huffman::HuffmanDecoder>,
}

impl Default for Table {
    fn default() -> Self {
        Table { entries: VecDeque::new(), size: 0, max: TABLE_SIZE, huffman: None }
    }
}

impl Table {
    fn name(&self, index: usize) -> Result<&[u8], Malformed> {
        match index {
            0 => Err(Malformed),
            1..=61 => Ok(STATIC_NAMES[index - 1].as_bytes()),
            _ => self.entries.get(index - 62).map(|(n, _)| n.as_slice()).ok_or(Malformed),
        }
    }

    fn insert(&mut self, name: Vec<u8>, value_len: usize) {
        let size = name.len() + value_len + 32;
        while self.size + size > self.max {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= n.len() + v + 32,
                None => break,
            }
        }
        if size <= self.max {
            self.size += size;
            self.entries.push_front((name, value_len));
        }
    }

    fn resize(&mut self, max: usize) {
        self.max = max;
        while self.size > self.max {
            if let Some((n, v)) = self.entries.pop_back() {
                self.size -= n.len() + v + 32;
            }
        }
    }

    /// An HPACK string literal, Huffman-decoded when so marked (RFC 7541 §5.2).
    fn string(&mut self, block: &[u8], pos: &mut usize) -> Result<Vec<u8>, Malformed> {
        let huffman = *block.get(*pos).ok_or(Malformed)? & 0x80 != 0;
        let len = integer(block, pos, 7)?;
        let raw = block.get(*pos..*pos + len).ok_or(Malformed)?;
        *pos += len;
        if huffman {
            let decoder = self.huffman.get_or_insert_with(fluke_hpack::huffman::HuffmanDecoder::new);
            decoder.decode(raw).map_err(|_| Malformed)
        } else {
            Ok(raw.to_vec())
        }
    }

    /// The block with every :authority that holds a scheme repaired, or None when none does.
    fn rewrite(&mut self, block: &[u8]) -> Result<Option<Vec<u8>>, Malformed> {
        let mut out = Vec::with_capacity(block.len() + 16);
        let mut changed = false;
        let mut pos = 0;
        while pos < block.len() {
            let start = pos;
            let b = block[pos];
            let (prefix, indexing) = match b {
                _ if b & 0x80 != 0 => {
                    self.name(integer(block, &mut pos, 7)?)?;
                    out.extend_from_slice(&block[start..pos]);
                    continue;
                }
                _ if b & 0xe0 == 0x20 => {
                    let max = integer(block, &mut pos, 5)?;
                    if max > TABLE_SIZE {
                        return Err(Malformed);
                    }
                    self.resize(max);
                    out.extend_from_slice(&block[start..pos]);
                    continue;
                }
                _ if b & 0xc0 == 0x40 => (6, true),
                _ => (4, false),
            };
            let index = integer(block, &mut pos, prefix)?;
            let name = if index == 0 { self.string(block, &mut pos)? } else { self.name(index)?.to_vec() };
            let value_at = pos;
            let value = self.string(block, &mut pos)?;
            match repaired(&name, &value) {
                Some(fixed) => {
                    out.extend_from_slice(&block[start..value_at]);
                    put_integer(&mut out, 0, 7, fixed.len());
                    out.extend_from_slice(&fixed);
                    changed = true;
                }
                None => out.extend_from_slice(&block[start..pos]),
            }
            if indexing {
                self.insert(name, value.len());
            }
        }
        Ok(changed.then_some(out))
    }
}

/// `scheme://host:port` as `scheme--@host:port` when `name` is :authority: the same length.
fn repaired(name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    if name != b":authority" {
        return None;
    }
    let at = value.windows(3).position(|w| w == b"://")?;
    if at == 0 || !value[..at].iter().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c)) {
        return None;
    }
    let mut fixed = value.to_vec();
    fixed[at..at + 3].copy_from_slice(b"--@");
    Some(fixed)
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1).
fn integer(block: &[u8], pos: &mut usize, prefix: u32) -> Result<usize, Malformed> {
    let mask = (1usize << prefix) - 1;
    let mut v = (*block.get(*pos).ok_or(Malformed)? as usize) & mask;
    *pos += 1;
    if v < mask {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        if shift > 28 {
            return Err(Malformed);
        }
        v += ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

fn put_integer(out: &mut Vec<u8>, high: u8, prefix: u32, mut v: usize) {
    let mask = (1usize << prefix) - 1;
    if v < mask {
        out.push(high | v as u8);
        return;
    }
    out.push(high | mask as u8);
    v -= mask;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
