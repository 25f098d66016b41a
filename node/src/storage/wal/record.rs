//! One WAL record on disk: `len: u32 LE | crc: u32 LE | kind: u8 | body`.
//!
//! `len` counts `kind + body`. The CRC covers the same bytes and is seeded with the previous
//! record's CRC, so a record can only be valid in the position it was written in: a stale
//! block left over from an earlier file generation never passes as part of the chain.

use std::io::{self, Write};

pub const HEADER_LEN: usize = 8;
/// A record larger than this is treated as garbage: no raft entry we accept comes close.
pub const MAX_RECORD_LEN: usize = 256 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// First record of every segment: member/cluster identity and the CRC the previous
    /// segment ended with.
    SegmentHeader = 1,
    Entry = 2,
    HardState = 3,
    Snapshot = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::SegmentHeader,
            2 => Kind::Entry,
            3 => Kind::HardState,
            4 => Kind::Snapshot,
            _ => return None,
        })
    }
}

pub fn crc(seed: u32, kind: Kind, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&[kind as u8]);
    h.update(body);
    h.finalize()
}

/// Appends one record to `out` and returns its CRC (the seed of the next record).
pub fn encode(out: &mut impl Write, seed: u32, kind: Kind, body: &[u8]) -> io::Result<u32> {
    let c = crc(seed, kind, body);
    let len = u32::try_from(body.len() + 1).map_err(|_| io::Error::other("wal record too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&c.to_le_bytes())?;
    out.write_all(&[kind as u8])?;
    out.write_all(body)?;
    Ok(c)
}

/// Why decoding stopped before the end of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// The buffer ends inside the record (its header, or the body its header announces).
    Incomplete,
    /// The length is zero or beyond any record we write.
    Length,
    /// The bytes are all there but do not check out: the CRC, or the kind.
    Mismatch,
}

pub struct Decoded<'a> {
    pub kind: Kind,
    pub body: &'a [u8],
    pub crc: u32,
    pub len: usize,
}

/// The CRC a record's header claims (valid or not); None if the header is incomplete.
pub fn stored_crc(buf: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?))
}

/// The length a record's header claims, header included; None if the header is incomplete.
pub fn claimed_len(buf: &[u8]) -> Option<usize> {
    Some(HEADER_LEN + u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize)
}

/// Whether the kind byte of the record at the start of `buf` names a kind.
pub fn plausible_kind(buf: &[u8]) -> bool {
    buf.get(HEADER_LEN).is_some_and(|k| Kind::from_u8(*k).is_some())
}

/// Decodes the record at the start of `buf`, chained to `seed`.
pub fn decode(buf: &[u8], seed: u32) -> Result<Decoded<'_>, Bad> {
    if buf.len() < HEADER_LEN {
        return Err(Bad::Incomplete);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(Bad::Length);
    }
    if buf.len() < HEADER_LEN + len {
        return Err(Bad::Incomplete);
    }
    let kind = Kind::from_u8(buf[HEADER_LEN]).ok_or(Bad::Mismatch)?;
    let body = &buf[HEADER_LEN + 1..HEADER_LEN + len];
    let c = crc(seed, kind, body);
    if c != stored {
        return Err(Bad::Mismatch);
    }
    Ok(Decoded { kind, body, crc: c, len: HEADER_LEN + len })
}
