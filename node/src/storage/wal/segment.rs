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

/// The segments in `dir`, oldest first. Leftover `.tmp` files of an interrupted cut are removed.
pub fn list(dir: &Path) -> Result<Vec<SegmentName>, WalError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            std::fs::remove_file(ent.path())?;
        } else if let Some(n) = SegmentName::parse(&name) {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
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

pub struct OwnedRecord {
    pub kind: Kind,
    pub body: Vec<u8>,
}

pub struct Segment {
    pub header: Option<Header>,
    pub records: Vec<OwnedRecord>,
    pub last_crc: u32,
    pub valid_len: usize,
    pub file_len: usize,
    /// Where the first record that failed to decode starts, if any.
    pub bad_offset: Option<usize>,
}

impl Segment {
    /// Reads every valid record. Each segment's chain starts at 0; the link to the previous
    /// segment is its header's prev_crc, which the caller checks.
    pub fn read(path: &Path) -> Result<Segment, WalError> {
        let buf = std::fs::read(path)?;
        let mut off = 0;
        let mut crc = 0u32;
        let mut header = None;
        let mut records = Vec::new();
        let mut bad_offset = None;
        while off < buf.len() {
            match record::decode(&buf[off..], crc) {
                Ok(d) => {
                    if off == 0 {
                        match (d.kind, parse_header(d.body)) {
                            (Kind::SegmentHeader, Some(h)) => header = Some(h),
                            _ => {
                                bad_offset = Some(0);
                                break;
                            }
                        }
                    } else {
                        records.push(OwnedRecord { kind: d.kind, body: d.body.to_vec() });
                    }
                    crc = d.crc;
                    off += d.len;
                }
                Err(Bad::Torn) | Err(Bad::Corrupt) => {
                    bad_offset = Some(off);
                    break;
                }
            }
        }
        Ok(Segment { header, records, last_crc: crc, valid_len: off, file_len: buf.len(), bad_offset })
    }
}
