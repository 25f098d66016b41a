//! Segmented write-ahead log: records of a few kinds (entries, hard state, snapshot markers),
//! each a body of bytes this module does not read (raft/'s log gives them their meaning).
//!
//! Segments are named `<seq>-<first index>.wal` (hex). Every segment starts with a header
//! record that carries the member and cluster ids and the CRC the previous segment ended
//! with, so the CRC chain runs across segments. On open the log is replayed. Only a torn
//! write at the very end of the LAST segment is cut off (it was never acknowledged:
//! acknowledgement follows fsync), decided by etcd's rule (see `segment::classify`); any
//! other damage refuses to start and changes nothing on disk.

mod record;
mod segment;

pub use segment::SEGMENT_TARGET_BYTES;

pub use record::Kind;
use segment::{Segment, SegmentName};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "wal: {why} in {} at offset {offset} (record {record} of the segment). This is damage, \
         not a write a crash interrupted, so nothing was changed on disk. The member cannot \
         start from this data dir: remove it from the cluster (etcdctl member remove) and add it \
         back with an empty data dir, or restore the data dir from a snapshot",
        path.display()
    )]
    Corrupt { path: PathBuf, offset: usize, record: usize, why: &'static str },
    #[error("wal: {0}")]
    Invalid(String),
}

/// A torn write at the end of the last segment: never acknowledged, cut by `open`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

/// Who this log belongs to; written at the head of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// The paths of the segments in `dir`, oldest first (none if `dir` is missing).
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match segment::list(dir) {
        Ok(names) => Ok(names.iter().map(|n| dir.join(n.file_name())).collect()),
        Err(WalError::Io(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// Whether the file starts with a Cairn segment header (etcd's segments share the naming).
pub fn is_cairn_segment(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)?.take(4096).read_to_end(&mut head)?;
    Ok(segment::starts_with_header(&head))
}

/// One record as replay found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub body: Vec<u8>,
}

/// Everything replay found: every record after the segment headers, oldest first.
#[derive(Debug)]
pub struct Scan {
    pub identity: Identity,
    pub records: Vec<Record>,
    /// The torn write at the end (`read` reports it, `open` has cut it).
    pub torn: Option<TornTail>,
}

/// Where appending resumes.
struct End {
    names: Vec<SegmentName>,
    crc: u32,
    written: u64,
}

pub struct Wal {
    dir: PathBuf,
    identity: Identity,
    segments: Vec<SegmentName>,
    out: BufWriter<File>,
    written: u64,
    crc: u32,
}

impl Wal {
    pub fn exists(dir: &Path) -> bool {
        segment::list(dir).map(|s| !s.is_empty()).unwrap_or(false)
    }

    /// Creates a new log whose first segment holds `records` after its header; `first_index`
    /// names the segment (the first entry index it may hold).
    pub fn create(
        dir: &Path,
        identity: Identity,
        first_index: u64,
        records: &[(Kind, Vec<u8>)],
    ) -> Result<Wal, WalError> {
        crate::storage::private::create_dir_all(dir)?;
        if Wal::exists(dir) {
            return Err(WalError::Invalid(format!("{} already holds a wal", dir.display())));
        }
        let name = SegmentName { seq: 0, first_index };
        let mut wal = Wal::start_segment(dir, identity, name, 0, Vec::new())?;
        for (kind, body) in records {
            wal.append(*kind, body)?;
        }
        wal.sync()?;
        Ok(wal)
    }

    /// Replays the log without changing anything on disk: a torn write at its end is
    /// reported in `torn`, any other damage is an error.
    pub fn read(dir: &Path) -> Result<Scan, WalError> {
        Ok(Wal::scan(dir)?.0)
    }

    /// Replays the log, cuts a torn write off its end, and opens its last segment for
    /// appending.
    pub fn open(dir: &Path) -> Result<(Wal, Scan), WalError> {
        let (scan, End { names, crc, written }) = Wal::scan(dir)?;
        if let Some(t) = &scan.torn {
            tracing::warn!(segment = %t.segment.display(), offset = t.offset, bytes = t.bytes,
                "wal: cutting off a torn write at the end of the log (it was never acknowledged)");
            let f = OpenOptions::new().write(true).open(&t.segment)?;
            f.set_len(t.offset)?;
            f.sync_all()?;
        }
        segment::remove_leftovers(dir)?;
        let last = *names.last().expect("scan found a segment");
        let file = OpenOptions::new().append(true).open(dir.join(last.file_name()))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            identity: scan.identity,
            segments: names,
            out: BufWriter::with_capacity(1 << 20, file),
            written,
            crc,
        };
        Ok((wal, scan))
    }

    fn scan(dir: &Path) -> Result<(Scan, End), WalError> {
        let names = segment::list(dir)?;
        let Some(last) = names.last().copied() else {
            return Err(WalError::Invalid(format!("no wal segments in {}", dir.display())));
        };
        let mut identity = None;
        let mut records = Vec::new();
        let mut crc = 0u32;
        let mut torn = None;
        let mut written = 0u64;
        for name in &names {
            let path = dir.join(name.file_name());
            let seg = Segment::read(&path)?;
            let corrupt = |offset, record, why| WalError::Corrupt { path: path.clone(), offset, record, why };
            let Some(header) = seg.header else {
                let d = seg.damage.unwrap_or(segment::Damage { offset: 0, record: 0, torn: false, why: "" });
                return Err(corrupt(d.offset, d.record, "no segment header (not a Cairn wal segment)"));
            };
            if let Some(d) = seg.damage {
                if !(d.torn && *name == last) {
                    return Err(corrupt(d.offset, d.record, d.why));
                }
                let bytes = (seg.file_len - d.offset) as u64;
                torn = Some(TornTail { segment: path.clone(), offset: d.offset as u64, bytes });
            }
            if name.seq != names[0].seq && header.prev_crc != crc {
                return Err(corrupt(0, 0, "the segment does not continue the previous one's crc chain"));
            }
            match identity {
                None => identity = Some(header.identity),
                Some(id) if id != header.identity => {
                    return Err(WalError::Invalid(format!("segment {} belongs to another member", path.display())))
                }
                Some(_) => {}
            }
            records.extend(seg.records.into_iter().map(|r| Record { kind: r.kind, body: r.body }));
            crc = seg.last_crc;
            written = seg.valid_len as u64;
        }
        let identity = identity.expect("at least one segment was read");
        Ok((Scan { identity, records, torn }, End { names, crc, written }))
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Appends a record (durable once `sync` returns).
    pub fn append(&mut self, kind: Kind, body: &[u8]) -> Result<(), WalError> {
        self.crc = record::encode(&mut self.out, self.crc, kind, body)?;
        let bytes = (record::HEADER_LEN + 1 + body.len()) as u64;
        self.written += bytes;
        crate::metrics::get().disk.wal_write_bytes.inc_by(bytes as i64);
        Ok(())
    }

    /// Makes everything written so far durable: one fsync for however many records (this is
    /// where group commit happens).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
    }

    /// Whether the current segment has reached its target size (time to `cut`).
    pub fn full(&self) -> bool {
        self.written >= SEGMENT_TARGET_BYTES
    }

    /// Starts a new segment named for `first_index` (the next entry index), beginning with
    /// `restate` (what replay must find even once the older segments are released), synced.
    pub fn cut(&mut self, first_index: u64, restate: &[(Kind, Vec<u8>)]) -> Result<(), WalError> {
        let last = *self.segments.last().expect("an open wal has a segment");
        let name = SegmentName { seq: last.seq + 1, first_index };
        let next = Wal::start_segment(&self.dir, self.identity, name, self.crc, std::mem::take(&mut self.segments))?;
        *self = next;
        for (kind, body) in restate {
            self.append(*kind, body)?;
        }
        self.sync()
    }

    /// Deletes whole segments that hold nothing after `index` (already in the backend).
    pub fn release_to(&mut self, index: u64) -> Result<(), WalError> {
        let mut keep_from = 0;
        for i in 0..self.segments.len().saturating_sub(1) {
            if self.segments[i + 1].first_index <= index + 1 {
                keep_from = i + 1;
            }
        }
        for name in self.segments.drain(..keep_from) {
            fs::remove_file(self.dir.join(name.file_name()))?;
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn start_segment(
        dir: &Path,
        identity: Identity,
        name: SegmentName,
        prev_crc: u32,
        mut segments: Vec<SegmentName>,
    ) -> Result<Wal, WalError> {
        let tmp = dir.join(format!("{}.tmp", name.file_name()));
        let mut buf = Vec::new();
        let crc = record::encode(&mut buf, 0, Kind::SegmentHeader, &segment::header_body(identity, prev_crc))?;
        {
            let mut f = crate::storage::private::create_file(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(name.file_name()))?;
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(dir.join(name.file_name()))?;
        segments.push(name);
        Ok(Wal {
            dir: dir.to_path_buf(),
            identity,
            segments,
            out: BufWriter::with_capacity(1 << 20, file),
            written: buf.len() as u64,
            crc,
        })
    }
}

#[cfg(test)]
mod tests;
