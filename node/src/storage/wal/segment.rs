//! Segment files: naming, listing and reading one back.

use super::record::{self, Bad, Kind};
use super::{Identity, WalError};
use std::path::Path;

/// A segment is cut once it passes this size (checked after each sync).
pub const SEGMENT_TARGET_BYTES: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    pub seq: u64,
    pub first_index: u64,
}

impl SegmentName {
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.first_index)
    }

    fn parse(s: &str) -> Option<SegmentName> {
        let stem = s.strip_suffix(".wal")?;
        let (a, b) = stem.split_once('-')?;
        Some(SegmentName { seq: u64::from_str_radix(a, 16).ok()?, first_index: u64::from_str_radix(b, 16).ok()? })
    }
}

/// The segments in `dir`, oldest first. Only reads: nothing in the dir is changed.
pub fn list(dir: &Path) -> Result<Vec<SegmentName>, WalError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for ent in rd {
        if let Some(n) = SegmentName::parse(&ent?.file_name().to_string_lossy()) {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes what an interrupted cut left behind (`<segment>.wal.tmp`, written before the
/// rename that makes a segment). Other files are never touched.
pub fn remove_leftovers(dir: &Path) -> Result<(), WalError> {
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.strip_suffix(".tmp").and_then(SegmentName::parse).is_some() {
            std::fs::remove_file(ent.path())?;
        }
    }
    Ok(())
}

pub struct Header {
    pub identity: Identity,
    pub prev_crc: u32,
}

pub fn header_body(id: Identity, prev_crc: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&id.member_id.to_le_bytes());
    b.extend_from_slice(&id.cluster_id.to_le_bytes());
    b.extend_from_slice(&prev_crc.to_le_bytes());
    b
}

fn parse_header(body: &[u8]) -> Option<Header> {
    if body.len() != 20 {
        return None;
    }
    Some(Header {
        identity: Identity {
            member_id: u64::from_le_bytes(body[0..8].try_into().ok()?),
            cluster_id: u64::from_le_bytes(body[8..16].try_into().ok()?),
        },
        prev_crc: u32::from_le_bytes(body[16..20].try_into().ok()?),
    })
}

/// Whether `buf` begins with a valid segment header record.
pub fn starts_with_header(buf: &[u8]) -> bool {
    record::decode(buf, 0).is_ok_and(|d| d.kind == Kind::SegmentHeader && parse_header(d.body).is_some())
}

pub struct OwnedRecord {
    pub kind: Kind,
    pub body: Vec<u8>,
}

/// Where and why a segment stops checking out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: usize,
    /// How many records (the header included) precede it.
    pub record: usize,
    /// A write that never completed, by etcd's rule (see `classify`); else corruption.
    pub torn: bool,
    pub why: &'static str,
}

pub struct Segment {
    pub header: Option<Header>,
    pub records: Vec<OwnedRecord>,
    pub last_crc: u32,
    pub valid_len: usize,
    pub file_len: usize,
    /// The first record that failed to decode, if any.
    pub damage: Option<Damage>,
}

impl Segment {
    /// Reads every valid record; never writes. Each segment's chain starts at 0; the link
    /// to the previous segment is its header's prev_crc, which the caller checks.
    pub fn read(path: &Path) -> Result<Segment, WalError> {
        let buf = std::fs::read(path)?;
        let mut off = 0;
        let mut crc = 0u32;
        let mut header = None;
        let mut records = Vec::new();
        let mut damage = None;
        while off < buf.len() {
            let count = records.len() + usize::from(header.is_some());
            match record::decode(&buf[off..], crc) {
                Ok(d) if off == 0 => match (d.kind, parse_header(d.body)) {
                    (Kind::SegmentHeader, Some(h)) => {
                        header = Some(h);
                        crc = d.crc;
                        off += d.len;
                    }
                    _ => {
                        damage = Some(Damage { offset: 0, record: 0, torn: false, why: "not a segment header" });
                        break;
                    }
                },
                Ok(d) => {
                    records.push(OwnedRecord { kind: d.kind, body: d.body.to_vec() });
                    crc = d.crc;
                    off += d.len;
                }
                Err(bad) => {
                    damage = Some(classify(&buf, off, bad, count));
                    break;
                }
            }
        }
        Ok(Segment { header, records, last_crc: crc, valid_len: off, file_len: buf.len(), damage })
    }
}

/// The sector size etcd's torn-write rule works in: a disk writes whole sectors, so a write
/// a crash interrupted leaves sectors that are all zeros (never written) behind.
const SECTOR: usize = 512;

/// Whether the record at `off` that failed to decode is a torn write or corruption. etcd's
/// rule (wal/decoder.go): a record the file ends inside of, or one whose bytes include a
/// whole sector of zeros, is torn. Cairn adds one condition: nothing intact may follow it.
/// A crash interrupts only the last write, and nothing after it was acknowledged (the fsync
/// that would have covered both never returned); intact records after damage mean the damage
/// came later, to records that may have been acknowledged, so cutting would destroy them.
fn classify(buf: &[u8], off: usize, bad: Bad, record: usize) -> Damage {
    let rest = &buf[off..];
    let damage = |torn, why| Damage { offset: off, record, torn, why };
    let torn_why = match bad {
        Bad::Incomplete => "the file ends inside a record",
        // Zeros where a header should be: space the file system extended the file by, never
        // written (the zero length etcd reads as the end of a preallocated file).
        Bad::Length if rest.iter().all(|b| *b == 0) => return damage(true, "zeros to the end of the file"),
        Bad::Length => return damage(false, "a record length no record has"),
        Bad::Mismatch => {
            let end = off + record::claimed_len(rest).unwrap_or(rest.len()).min(rest.len());
            if !has_zero_sector(buf, off + record::HEADER_LEN, end) {
                return damage(false, "crc mismatch");
            }
            "a record holds a sector of zeros"
        }
    };
    if written_after(rest) {
        return damage(false, "damaged record followed by intact ones");
    }
    damage(true, torn_why)
}

/// Whether intact records follow the damaged record `rest` starts with: one chained to the
/// CRC its header stores, or any two chained to each other (when its header is lost too).
fn written_after(rest: &[u8]) -> bool {
    let first_seed = record::stored_crc(rest);
    (1..rest.len()).any(|p| {
        if first_seed.is_some_and(|seed| record::decode(&rest[p..], seed).is_ok()) {
            return true;
        }
        let here = &rest[p..];
        match (record::stored_crc(here), record::claimed_len(here)) {
            (Some(seed), Some(len)) if len > record::HEADER_LEN && len < here.len() => {
                record::plausible_kind(here) && record::decode(&here[len..], seed).is_ok()
            }
            _ => false,
        }
    })
}

/// Whether some sector-aligned piece of `buf[from..to]` is all zeros.
fn has_zero_sector(buf: &[u8], from: usize, to: usize) -> bool {
    let mut at = from;
    while at < to {
        let next = ((at / SECTOR + 1) * SECTOR).min(to);
        if buf[at..next].iter().all(|b| *b == 0) {
            return true;
        }
        at = next;
    }
    false
}
