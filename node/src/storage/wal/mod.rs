//! Segmented write-ahead log for raft: entries, hard state and snapshot markers.
//!
//! Segments are named `<seq>-<first index>.wal` (hex). Every segment starts with a header
//! record that carries the member and cluster ids and the CRC the previous segment ended
//! with, so the CRC chain runs across segments. On open the log is replayed; a torn or
//! corrupt tail of the LAST segment is cut off (it was never acknowledged: acknowledgement
//! follows fsync), while damage anywhere else refuses to start.

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
    #[error("wal: segment {segment} is corrupt at offset {offset}; refusing to start")]
    Corrupt { segment: String, offset: usize },
    #[error("wal: {0}")]
    Invalid(String),
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
    /// Bytes cut from the tail of the last segment by repair.
    pub repaired_bytes: usize,
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
        fs::create_dir_all(dir)?;
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

    /// Replays the log and opens its last segment for appending.
    pub fn open(dir: &Path) -> Result<(Wal, Replayed), WalError> {
        let names = segment::list(dir)?;
        let Some(last) = names.last().copied() else {
            return Err(WalError::Invalid(format!("no wal segments in {}", dir.display())));
        };
        let mut identity = None;
        let mut snapshot = SnapshotMetadata::default();
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut crc = 0u32;
        let mut repaired_bytes = 0;
        let mut end_of_last = 0u64;
        for name in &names {
            let path = dir.join(name.file_name());
            let is_last = *name == last;
            let seg = Segment::read(&path)?;
            if let Some(bad_at) = seg.bad_offset {
                if !is_last {
                    return Err(WalError::Corrupt { segment: name.file_name(), offset: bad_at });
                }
                repaired_bytes = seg.file_len - bad_at;
                tracing::warn!(segment = %name.file_name(), offset = bad_at, bytes = repaired_bytes,
                    "wal: cutting off a torn or corrupt tail");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(bad_at as u64)?;
                f.sync_all()?;
            }
            let Some(header) = seg.header else {
                return Err(WalError::Corrupt { segment: name.file_name(), offset: 0 });
            };
            if name.seq != names[0].seq && header.prev_crc != crc {
                return Err(WalError::Corrupt { segment: name.file_name(), offset: 0 });
            }
            match identity {
                None => identity = Some(header.identity),
                Some(id) if id != header.identity => {
                    return Err(WalError::Invalid(format!("segment {} belongs to another member", name.file_name())))
                }
                Some(_) => {}
            }
            for rec in seg.records {
                match rec.kind {
                    Kind::Entry => {
                        let e = Entry::parse_from_bytes(&rec.body).map_err(|e| WalError::Invalid(e.to_string()))?;
                        // A later write at an index we already hold replaces the old tail
                        // (raft truncated a conflicting suffix).
                        while entries.last().is_some_and(|l| l.index >= e.index) {
                            entries.pop();
                        }
                        entries.push(e);
                    }
                    Kind::HardState => {
                        hard_state =
                            HardState::parse_from_bytes(&rec.body).map_err(|e| WalError::Invalid(e.to_string()))?;
                    }
                    Kind::Snapshot => {
                        snapshot = SnapshotMetadata::parse_from_bytes(&rec.body)
                            .map_err(|e| WalError::Invalid(e.to_string()))?;
                    }
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
        let file = OpenOptions::new().append(true).open(dir.join(last.file_name()))?;
        let last_index = entries.last().map_or(snapshot.index, |e| e.index);
        let wal = Wal {
            dir: dir.to_path_buf(),
            identity,
            segments: names,
            out: BufWriter::with_capacity(1 << 20, file),
            written: end_of_last,
            crc,
            last_index,
            hard_state: hard_state.clone(),
            snapshot: snapshot.clone(),
        };
        Ok((wal, Replayed { identity, snapshot, hard_state, entries, repaired_bytes }))
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
            let mut f = File::create(&tmp)?;
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
