//! The sled database. Everything lives in ONE tree so that a single `sled::Batch` — data plus
//! the applied raft index — is atomic: after a crash the backend is exactly as of some applied
//! index, and raft replays from there.
//!
//! Reading is open to every holder of the `Backend`; writing takes the `BackendWriter`, of
//! which `Backend::open` makes exactly one. It goes to the applier (or to an offline tool
//! making a new data dir), so nothing else can write, by construction.
//!
//! Key prefixes, in key order: `l` + lease id (a lease), `m` + name (metadata), `q` + main revision + chunk (tombstones
//! of that revision), `r` + revision (a put). The order matters to sled: new puts append at
//! the very end of the keyspace, so no other record shares the leaf they keep rewriting.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend: {0}")]
    Sled(#[from] sled::Error),
    #[error("backend: corrupt value under {key}: {why}")]
    Corrupt { key: String, why: String },
}

pub const PREFIX_REV: u8 = b'r';
pub const PREFIX_TOMBSTONES: u8 = b'q';
pub const PREFIX_LEASE: u8 = b'l';
pub const PREFIX_META: u8 = b'm';

pub const META_APPLIED_INDEX: &[u8] = b"mapplied_index";
/// Named by the snapshot format too: tools find a snapshot's revision by it.
pub const META_REVISION: &[u8] = cairn_api::snapshot::image::META_REVISION;
pub const META_COMPACT_REVISION: &[u8] = b"mcompact_revision";

/// The sled database, which defragmentation replaces with a rewritten copy. The copy in use
/// is generation g: the dir at `path` for g = 0, `path.<g>` after; the file `path.gen` names g
/// (written atomically, so a crash leaves one or the other, never a mix).
pub struct Backend {
    path: PathBuf,
    inner: RwLock<Inner>,
    /// The size on disk and when it was measured: measuring stats every file of the copy,
    /// too much for each put the quota checks.
    size: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    /// The bytes of live records, when they were counted (a scan of every record) and the
    /// size on disk at that moment.
    in_use: std::sync::Mutex<Option<LiveCount>>,
    /// How much larger than its live records a freshly written copy is (sled's page headers,
    /// index nodes and segment slack: 1.6 for 1 KiB values), learned at each defragmentation
    /// and kept in `path.overhead`, so that the size in use estimates what a defragmented
    /// copy would take, as etcd's does. 1 until the first defragmentation.
    overhead: std::sync::Mutex<f64>,
}

/// A batch that copies records (defragmentation, loading an image) holds at most this many
/// records or bytes: sled lays large batches out loosely (a 146 MB backend reloaded in batches
/// of 4096 records of 4 KiB took 192 MB; in batches of 256, 134 MB).
pub const COPY_BATCH: usize = 256;
pub const COPY_BATCH_BYTES: usize = 1 << 20;

/// How old a count of live bytes may be when it is answered: counting reads every record.
const IN_USE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// How old a measured size may be when it is answered.
const SIZE_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Clone, Copy)]
struct LiveCount {
    at: std::time::Instant,
    live: u64,
    size: u64,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    generation: u64,
}

fn generation_path(base: &Path, g: u64) -> PathBuf {
    if g == 0 {
        base.to_path_buf()
    } else {
        base.with_extension(g.to_string())
    }
}

fn open_sled(path: &Path) -> Result<(sled::Db, sled::Tree), BackendError> {
    let db = sled::Config::new().path(path).flush_every_ms(Some(200)).open()?;
    let tree = db.open_tree("cairn")?;
    Ok((db, tree))
}

/// The one right to change a backend (see the module's documentation).
pub struct BackendWriter {
    backend: Arc<Backend>,
}

impl BackendWriter {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Applies a batch atomically.
    pub fn apply(&self, batch: sled::Batch) -> Result<(), BackendError> {
        self.backend.tree().apply_batch(batch)?;
        Ok(())
    }

    /// Removes every record (before an image is loaded).
    pub fn clear(&self) -> Result<(), BackendError> {
        self.backend.tree().clear()?;
        Ok(())
    }

    /// Waits until every applied batch is on disk.
    pub fn flush(&self) -> Result<(), BackendError> {
        self.backend.flush()
    }

    /// See `Backend::defragment_copy`.
    pub fn defragment(&self) -> Result<(u64, u64), BackendError> {
        self.backend.defragment_copy()
    }
}

impl Backend {
    /// Opens (or creates) the backend at `path`, with its one writer.
    pub fn open(path: &Path) -> Result<(Arc<Backend>, BackendWriter), BackendError> {
        let backend = Arc::new(Backend::open_reader(path)?);
        Ok((backend.clone(), BackendWriter { backend }))
    }

    fn open_reader(path: &Path) -> Result<Backend, BackendError> {
        let marker = path.with_extension("gen");
        let generation: u64 = match std::fs::read_to_string(&marker) {
            Ok(g) => g.trim().parse().map_err(|_| BackendError::Corrupt {
                key: marker.display().to_string(),
                why: format!("not a generation: {g:?}"),
            })?,
            Err(_) => 0,
        };
        // A copy a crash left behind (a defragmentation that did not finish, or an old
        // generation not yet deleted) is of no use.
        let stale = generation.checked_sub(1).into_iter().chain([generation + 1]);
        for g in stale {
            let _ = std::fs::remove_dir_all(generation_path(path, g));
        }
        let inner = Inner::open(&generation_path(path, generation), generation)?;
        let overhead = std::fs::read_to_string(path.with_extension("overhead"))
            .ok()
            .and_then(|f| f.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f >= 1.0)
            .unwrap_or(1.0);
        Ok(Backend {
            path: path.to_path_buf(),
            inner: RwLock::new(inner),
            size: Default::default(),
            in_use: Default::default(),
            overhead: std::sync::Mutex::new(overhead),
        })
    }

    fn inner(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The records (a handle on the copy in use). Private: a `sled::Tree` can write.
    fn tree(&self) -> sled::Tree {
        self.inner().tree.clone()
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<sled::IVec>, BackendError> {
        Ok(self.tree().get(key)?)
    }

    /// Every record, in key order.
    pub fn iter(&self) -> sled::Iter {
        self.tree().iter()
    }

    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> sled::Iter {
        self.tree().scan_prefix(prefix)
    }

    pub fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> sled::Iter {
        self.tree().range(range)
    }

    pub fn len(&self) -> usize {
        self.tree().len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree().is_empty()
    }

    /// Waits until every applied batch is on disk.
    pub fn flush(&self) -> Result<(), BackendError> {
        let db = self.inner().db.clone();
        db.flush()?;
        Ok(())
    }

    /// The size on disk, as measured at most SIZE_MAX_AGE ago.
    pub fn size_on_disk(&self) -> u64 {
        let mut size = self.size.lock().unwrap_or_else(|e| e.into_inner());
        match *size {
            Some((at, bytes)) if at.elapsed() < SIZE_MAX_AGE => bytes,
            _ => {
                let bytes = self.inner().db.size_on_disk().unwrap_or(0);
                *size = Some((std::time::Instant::now(), bytes));
                bytes
            }
        }
    }

    /// etcd's dbSizeInUse: the size a copy without garbage would take, estimated as the
    /// bytes of the live records (keys and values) times the overhead the last
    /// defragmentation found, and never more than the size on disk. Counted at most
    /// IN_USE_MAX_AGE ago; what the backend grew since that count is taken as in use, so
    /// that a fast fill never looks fragmented (an operator would defragment live data; a
    /// run on a stale count found 50% "fragmentation" in a backend being filled). A count
    /// reads every record, so callers on an async runtime run it as blocking work.
    pub fn bytes_in_use(&self) -> u64 {
        let overhead = *self.overhead.lock().unwrap_or_else(|e| e.into_inner());
        let count = self.live_count();
        let now = self.size_on_disk();
        ((count.live as f64 * overhead) as u64 + now.saturating_sub(count.size)).min(now)
    }

    fn live_count(&self) -> LiveCount {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        match *in_use {
            Some(c) if c.at.elapsed() < IN_USE_MAX_AGE => c,
            _ => {
                // The size first: what is written during the scan is then growth after it
                // (counted in use), never garbage.
                let size = self.measure_size();
                let live = self.tree().iter().flatten().map(|(k, v)| (k.len() + v.len()) as u64).sum();
                let c = LiveCount { at: std::time::Instant::now(), live, size };
                *in_use = Some(c);
                c
            }
        }
    }

    /// Learns sled's overhead from a fresh copy of `live` bytes of records taking `size`.
    fn learn_overhead(&self, size: u64, live: u64) {
        if live == 0 {
            return;
        }
        let f = (size as f64 / live as f64).max(1.0);
        *self.overhead.lock().unwrap_or_else(|e| e.into_inner()) = f;
        // Only an estimate rides on it: a lost write costs a less accurate one after a restart.
        let _ = std::fs::write(self.path.with_extension("overhead"), format!("{f}\n"));
    }

    /// etcd's Hash: a CRC-32C of every record, keys then values in key order, except the
    /// applied raft index (which etcd leaves out too: it differs between members that hold
    /// the same data). Consistent only where nothing writes meanwhile (the applier).
    pub fn hash(&self) -> Result<u32, BackendError> {
        let mut h = crate::storage::crc32c::Crc32c::new();
        for item in self.tree().iter() {
            let (k, v) = item?;
            if k.as_ref() != META_APPLIED_INDEX {
                h.update(&k);
                h.update(&v);
            }
        }
        Ok(h.finish())
    }

    fn measure_size(&self) -> u64 {
        self.size.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.size_on_disk()
    }

    /// Rewrites the records into a fresh copy and switches to it: the space of deleted
    /// records (compacted history) goes back to the file system. Must run where nothing
    /// writes meanwhile (the applier, between batches); readers go on throughout. Returns
    /// the size on disk before and after.
    fn defragment_copy(&self) -> Result<(u64, u64), BackendError> {
        self.flush()?;
        let before = self.measure_size();
        let old = self.inner().generation;
        let next = old + 1;
        let next_path = generation_path(&self.path, next);
        let _ = std::fs::remove_dir_all(&next_path);
        let marker = self.path.with_extension("gen");
        let io = |e: std::io::Error| BackendError::Corrupt { key: marker.display().to_string(), why: e.to_string() };
        // A plain handle on the new copy (no generations of its own) to copy the records into.
        let fresh = Backend {
            path: next_path.clone(),
            inner: RwLock::new(Inner::open(&next_path, next)?),
            size: Default::default(),
            in_use: Default::default(),
            overhead: std::sync::Mutex::new(1.0),
        };
        // Record by record, in batches small enough that sled lays them out tightly.
        let (into, mut batch, mut n, mut bytes) = (fresh.tree(), sled::Batch::default(), 0, 0);
        for item in self.iter() {
            let (k, v) = item?;
            bytes += k.len() + v.len();
            batch.insert(k, v);
            n += 1;
            if n == COPY_BATCH || bytes >= COPY_BATCH_BYTES {
                into.apply_batch(std::mem::take(&mut batch))?;
                (n, bytes) = (0, 0);
            }
        }
        into.apply_batch(batch)?;
        // A store with little garbage can come out larger (sled lays records out a little
        // differently each time): then the copy in use stays, so defragmenting never grows it.
        // Both sizes are taken after a flush: sled's background flush would otherwise grow
        // the copy after it was measured.
        fresh.flush()?;
        let copy = fresh.measure_size();
        self.in_use.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.learn_overhead(copy, fresh.live_count().live);
        if copy >= before {
            drop(fresh);
            let _ = std::fs::remove_dir_all(&next_path);
            return Ok((before, before));
        }
        // The switch: first on disk (the marker names the new copy), then in memory.
        let tmp = self.path.with_extension("gen.tmp");
        std::fs::write(&tmp, next.to_string()).map_err(io)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, &marker).map_err(io)?;
        let fresh = fresh.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut *self.inner.write().unwrap_or_else(|e| e.into_inner()), fresh);
        drop(previous);
        let _ = std::fs::remove_dir_all(generation_path(&self.path, old));
        Ok((before, self.measure_size()))
    }

    pub fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, BackendError> {
        match self.tree().get(key)? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| BackendError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    why: format!("expected 8 bytes, found {}", v.len()),
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }

    pub fn applied_index(&self) -> Result<u64, BackendError> {
        Ok(self.get_u64(META_APPLIED_INDEX)?.unwrap_or(0))
    }
}

impl Inner {
    fn open(path: &Path, generation: u64) -> Result<Inner, BackendError> {
        let (db, tree) = open_sled(path)?;
        Ok(Inner { db, tree, generation })
    }
}

pub fn put_u64(batch: &mut sled::Batch, key: &[u8], v: u64) {
    batch.insert(key, &v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sled's background threads let go of a dropped database's file lock a moment later.
    fn reopen(base: &Path) -> (Arc<Backend>, BackendWriter) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Backend::open(base) {
                Ok(b) => return b,
                Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("could not acquire lock") => {
                    std::thread::yield_now()
                }
                Err(e) => panic!("reopening: {e}"),
            }
        }
    }

    #[test]
    fn defragmentation_gives_space_back_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("db");
        let (b, w) = Backend::open(&base).unwrap();
        for i in 0..2000u32 {
            b.tree().insert(i.to_be_bytes(), vec![b'x'; 4096]).unwrap();
        }
        for i in 100..2000u32 {
            b.tree().remove(i.to_be_bytes()).unwrap();
        }
        b.flush().unwrap();
        // Until a defragmentation shows sled's overhead, the live records are what is in use.
        assert_eq!(b.bytes_in_use(), 100 * (4 + 4096));
        let (before, after) = w.defragment().unwrap();
        assert!(after * 2 < before, "{before} -> {after} bytes");
        assert_eq!(b.tree().len(), 100);
        // From then on the estimate is of a fresh copy's size: what an operator reads as
        // fragmentation (1 - in use / size) was most of the file before, and is little now
        // (sled's sizes move by segments, so not nothing).
        let in_use = b.bytes_in_use();
        assert!(in_use * 10 >= b.size_on_disk() * 8 && in_use <= b.size_on_disk(), "{in_use} in use of {after}");
        b.tree().insert(b"after", b"1".to_vec()).unwrap();
        b.flush().unwrap();
        drop((b, w));
        assert!(!base.exists(), "generation 0 is gone");
        // A restart opens the copy the marker names.
        let (b, w) = reopen(&base);
        assert_eq!(b.tree().len(), 101);
        assert_eq!(b.tree().get(b"after").unwrap().as_deref(), Some(&b"1"[..]));
        // Garbage again, so that the next copy is smaller and replaces this one.
        for i in 5000..7000u32 {
            b.tree().insert(i.to_be_bytes(), vec![b'y'; 4096]).unwrap();
        }
        for i in 5000..7000u32 {
            b.tree().remove(i.to_be_bytes()).unwrap();
        }
        b.flush().unwrap();
        let (before, after) = w.defragment().unwrap();
        assert!(after < before, "{before} -> {after} bytes");
        drop((b, w));
        assert!(!base.with_extension("1").exists(), "generation 1 is gone");
        assert_eq!(reopen(&base).0.len(), 101);
    }

    #[test]
    fn a_backend_filled_after_its_last_count_does_not_look_fragmented() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _w) = Backend::open(&dir.path().join("db")).unwrap();
        b.tree().insert(b"first", vec![b'x'; 4096]).unwrap();
        b.flush().unwrap();
        b.bytes_in_use();
        // Filled well within the count's age: nothing of it is garbage.
        for i in 0..3000u32 {
            b.tree().insert(i.to_be_bytes(), vec![b'x'; 4096]).unwrap();
        }
        b.flush().unwrap();
        let size = b.measure_size();
        let in_use = b.bytes_in_use();
        assert!(size > 3000 * 4096 && in_use * 10 >= size * 9, "{in_use} in use of {size}");
    }

    #[test]
    fn defragmenting_a_store_without_garbage_never_grows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (b, w) = Backend::open(&dir.path().join("db")).unwrap();
        for i in 0..8000u32 {
            b.tree().insert(i.to_be_bytes(), vec![b'x'; 4096]).unwrap();
        }
        b.flush().unwrap();
        let (before, after) = w.defragment().unwrap();
        assert!(after <= before, "{before} -> {after} bytes");
        assert_eq!(b.tree().len(), 8000);
        // Without garbage, all of it is in use (sled's background writes move the size a
        // little meanwhile).
        let in_use = b.bytes_in_use();
        assert!(in_use <= b.size_on_disk() && in_use * 100 >= after * 98, "{in_use} in use of {after}");
    }

    #[test]
    fn the_hash_covers_every_record_but_the_applied_index() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| Backend::open(&dir.path().join(name)).unwrap();
        let ((a, aw), (b, bw)) = (open("a"), open("b"));
        for (writer, applied) in [(&aw, 7u64), (&bw, 9)] {
            let mut batch = sled::Batch::default();
            batch.insert(&b"r1"[..], &b"one"[..]);
            batch.insert(&b"l2"[..], &b"lease"[..]);
            put_u64(&mut batch, META_APPLIED_INDEX, applied);
            writer.apply(batch).unwrap();
        }
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        b.tree().insert(b"r2", b"two".to_vec()).unwrap();
        assert_ne!(a.hash().unwrap(), b.hash().unwrap());
        a.tree().insert(b"r2", b"tw0".to_vec()).unwrap();
        assert_ne!(a.hash().unwrap(), b.hash().unwrap());
    }
}
