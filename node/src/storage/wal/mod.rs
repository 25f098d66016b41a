//! Segmented write-ahead log for raft: entries, hard state and snapshot markers.
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

use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};
use record::Kind;
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

/// Everything replay found.
#[derive(Debug)]
pub struct Replayed {
    pub identity: Identity,
    pub snapshot: SnapshotMetadata,
    pub hard_state: HardState,
    /// Entries after the snapshot index, in order.
    pub entries: Vec<Entry>,
    /// The torn write at the end (`read` reports it, `open` has cut it).
    pub torn: Option<TornTail>,
}

/// What replay learned beyond the records: where appending resumes.
struct Scan {
    replayed: Replayed,
    names: Vec<SegmentName>,
    crc: u32,
    end_of_last: u64,
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

pub struct Wal {
    dir: PathBuf,
    identity: Identity,
    segments: Vec<SegmentName>,
    out: BufWriter<File>,
    written: u64,
    crc: u32,
    last_index: u64,
    hard_state: HardState,
    snapshot: SnapshotMetadata,
}

impl Wal {
    pub fn exists(dir: &Path) -> bool {
        segment::list(dir).map(|s| !s.is_empty()).unwrap_or(false)
    }

    /// Creates a new log whose state starts at `snapshot` (the bootstrap membership).
    pub fn create(
        dir: &Path,
        identity: Identity,
        snapshot: SnapshotMetadata,
        hard_state: HardState,
    ) -> Result<Wal, WalError> {
        crate::storage::private::create_dir_all(dir)?;
        if Wal::exists(dir) {
            return Err(WalError::Invalid(format!("{} already holds a wal", dir.display())));
        }
        let name = SegmentName { seq: 0, first_index: snapshot.index + 1 };
        let mut wal = Wal::start_segment(dir, identity, name, 0, Vec::new())?;
        wal.last_index = snapshot.index;
        wal.save_snapshot(&snapshot)?;
        wal.save_hard_state(&hard_state)?;
        wal.sync()?;
        Ok(wal)
    }

    /// Replays the log without changing anything on disk: a torn write at its end is
    /// reported in `torn`, any other damage is an error.
    pub fn read(dir: &Path) -> Result<Replayed, WalError> {
        Ok(Wal::scan(dir)?.replayed)
    }

    /// Replays the log, cuts a torn write off its end, and opens its last segment for
    /// appending.
    pub fn open(dir: &Path) -> Result<(Wal, Replayed), WalError> {
        let Scan { replayed, names, crc, end_of_last } = Wal::scan(dir)?;
        if let Some(t) = &replayed.torn {
            tracing::warn!(segment = %t.segment.display(), offset = t.offset, bytes = t.bytes,
                "wal: cutting off a torn write at the end of the log (it was never acknowledged)");
            let f = OpenOptions::new().write(true).open(&t.segment)?;
            f.set_len(t.offset)?;
            f.sync_all()?;
        }
        segment::remove_leftovers(dir)?;
        let last = *names.last().expect("scan found a segment");
        let file = OpenOptions::new().append(true).open(dir.join(last.file_name()))?;
        let last_index = replayed.entries.last().map_or(replayed.snapshot.index, |e| e.index);
        let wal = Wal {
            dir: dir.to_path_buf(),
            identity: replayed.identity,
            segments: names,
            out: BufWriter::with_capacity(1 << 20, file),
            written: end_of_last,
            crc,
            last_index,
            hard_state: replayed.hard_state.clone(),
            snapshot: replayed.snapshot.clone(),
        };
        Ok((wal, replayed))
    }

    fn scan(dir: &Path) -> Result<Scan, WalError> {
        let names = segment::list(dir)?;
        let Some(last) = names.last().copied() else {
            return Err(WalError::Invalid(format!("no wal segments in {}", dir.display())));
        };
        let mut identity = None;
        let mut snapshot = SnapshotMetadata::default();
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut crc = 0u32;
        let mut torn = None;
        let mut end_of_last = 0u64;
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
            for rec in seg.records {
                let bad = |e: protobuf::ProtobufError| {
                    WalError::Invalid(format!("{}: a {:?} record does not decode: {e}", path.display(), rec.kind))
                };
                match rec.kind {
                    Kind::Entry => {
                        let e = Entry::parse_from_bytes(&rec.body).map_err(bad)?;
                        // A later write at an index we already hold replaces the old tail
                        // (raft truncated a conflicting suffix).
                        while entries.last().is_some_and(|l| l.index >= e.index) {
                            entries.pop();
                        }
                        entries.push(e);
                    }
                    Kind::HardState => hard_state = HardState::parse_from_bytes(&rec.body).map_err(bad)?,
                    Kind::Snapshot => snapshot = SnapshotMetadata::parse_from_bytes(&rec.body).map_err(bad)?,
                    Kind::SegmentHeader => {}
                }
            }
            crc = seg.last_crc;
            end_of_last = seg.valid_len as u64;
        }
        entries.retain(|e| e.index > snapshot.index);
        if let Some(first) = entries.first() {
            if first.index != snapshot.index + 1 {
                return Err(WalError::Invalid(format!(
                    "wal has a hole: snapshot at {} but first entry at {}",
                    snapshot.index, first.index
                )));
            }
        }
        let identity = identity.expect("at least one segment was read");
        let replayed = Replayed { identity, snapshot, hard_state, entries, torn };
        Ok(Scan { replayed, names, crc, end_of_last })
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        for e in entries {
            self.write_message(Kind::Entry, e)?;
            self.last_index = e.index;
        }
        Ok(())
    }

    pub fn save_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        self.write_message(Kind::HardState, hs)?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// Records that everything up to `meta.index` is held by the backend; the entries before
    /// it are no longer needed for replay.
    pub fn save_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), WalError> {
        self.write_message(Kind::Snapshot, meta)?;
        self.snapshot = meta.clone();
        Ok(())
    }

    fn write_message(&mut self, kind: Kind, m: &impl protobuf::Message) -> Result<(), WalError> {
        let body = m.write_to_bytes().map_err(|e| WalError::Invalid(e.to_string()))?;
        self.write(kind, &body)
    }

    /// Makes everything written so far durable (one fsync for however many records: this is
    /// where group commit happens), then starts a new segment if this one is full.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        if self.written >= SEGMENT_TARGET_BYTES {
            self.cut()?;
        }
        Ok(())
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

    fn write(&mut self, kind: Kind, body: &[u8]) -> Result<(), WalError> {
        self.crc = record::encode(&mut self.out, self.crc, kind, body)?;
        self.written += (record::HEADER_LEN + 1 + body.len()) as u64;
        Ok(())
    }

    fn cut(&mut self) -> Result<(), WalError> {
        let last = *self.segments.last().expect("an open wal has a segment");
        let name = SegmentName { seq: last.seq + 1, first_index: self.last_index + 1 };
        let next = Wal::start_segment(&self.dir, self.identity, name, self.crc, std::mem::take(&mut self.segments))?;
        let (hs, snap, last_index) = (self.hard_state.clone(), self.snapshot.clone(), self.last_index);
        *self = next;
        self.last_index = last_index;
        // Each segment restates the latest snapshot marker and hard state so that older
        // segments can be released without losing them.
        self.save_snapshot(&snap)?;
        self.save_hard_state(&hs)?;
        self.sync()
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
            last_index: 0,
            hard_state: HardState::default(),
            snapshot: SnapshotMetadata::default(),
        })
    }
}

#[cfg(test)]
mod tests;
