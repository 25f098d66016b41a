//! A backend image: every record of the backend as of one applied index. It is what a raft
//! snapshot carries to a member behind the leader's compacted log.
//!
//! Format: `cairn_api::snapshot::image` (what Maintenance.Snapshot streams). Written to a
//! temporary name and renamed, so an image under its final name is complete.

use super::backend::Backend;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use cairn_api::snapshot::image::{END, MAGIC};
/// A backend batch while loading holds at most this many records or bytes: sled lays large
/// batches out loosely (a 146 MB backend reloaded in batches of 4096 records of 4 KiB took
/// 192 MB; in batches of 256, 134 MB).
const LOAD_BATCH: usize = 256;
const LOAD_BATCH_BYTES: usize = 1 << 20;

pub fn path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.image"))
}

fn corrupt(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Writes every record of `backend` to `dest`. The caller keeps writers out meanwhile (the
/// applier calls it between batches), so the image is of one applied index.
pub fn write(backend: &Backend, dest: &Path) -> io::Result<u64> {
    let tmp = dest.with_extension("image.tmp");
    let mut out = CrcWriter { inner: BufWriter::new(std::fs::File::create(&tmp)?), crc: crc32fast::Hasher::new() };
    out.write_all(MAGIC)?;
    for item in backend.tree().iter() {
        let (k, v) = item.map_err(io::Error::other)?;
        out.write_all(&(k.len() as u32).to_be_bytes())?;
        out.write_all(&k)?;
        out.write_all(&(v.len() as u32).to_be_bytes())?;
        out.write_all(&v)?;
    }
    out.write_all(&END.to_be_bytes())?;
    let crc = out.crc.clone().finalize();
    let mut file = out.inner.into_inner().map_err(|e| e.into_error())?;
    file.write_all(&crc.to_be_bytes())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    std::fs::rename(&tmp, dest)?;
    Ok(size)
}

/// Reads every record of the image at `src`, checking its structure and CRC; `each` gets
/// them in order.
pub fn read(src: &Path, mut each: impl FnMut(Vec<u8>, Vec<u8>) -> io::Result<()>) -> io::Result<()> {
    let mut r = CrcReader { inner: BufReader::new(std::fs::File::open(src)?), crc: crc32fast::Hasher::new() };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(corrupt("not a cairn backend image"));
    }
    let mut word = [0u8; 4];
    loop {
        r.read_exact(&mut word)?;
        let klen = u32::from_be_bytes(word);
        if klen == END {
            break;
        }
        let mut key = vec![0u8; klen as usize];
        r.read_exact(&mut key)?;
        r.read_exact(&mut word)?;
        let mut value = vec![0u8; u32::from_be_bytes(word) as usize];
        r.read_exact(&mut value)?;
        each(key, value)?;
    }
    let want = r.crc.clone().finalize();
    r.inner.read_exact(&mut word)?;
    if u32::from_be_bytes(word) != want {
        return Err(corrupt("image checksum mismatch"));
    }
    Ok(())
}

pub fn check(src: &Path) -> io::Result<()> {
    read(src, |_, _| Ok(()))
}

/// Makes `backend` hold exactly the image's records. Checked first, so a damaged image
/// leaves the backend as it was.
pub fn load(backend: &Backend, src: &Path) -> io::Result<()> {
    load_reporting(backend, src, |_| {})
}

/// `load`, telling `loaded` how many bytes of the image each record took.
pub fn load_reporting(backend: &Backend, src: &Path, mut loaded: impl FnMut(u64)) -> io::Result<()> {
    check(src)?;
    let tree = backend.tree();
    tree.clear().map_err(io::Error::other)?;
    let mut batch = sled::Batch::default();
    let (mut n, mut bytes) = (0, 0);
    // The applied index goes in last, after everything else is on disk: a crash midway leaves
    // a backend that is visibly behind the WAL's snapshot, and the load is redone at start.
    let mut applied = None;
    read(src, |k, v| {
        if k == super::backend::META_APPLIED_INDEX {
            applied = Some(v);
            return Ok(());
        }
        bytes += k.len() + v.len();
        loaded((8 + k.len() + v.len()) as u64);
        batch.insert(k, v);
        n += 1;
        if n == LOAD_BATCH || bytes >= LOAD_BATCH_BYTES {
            tree.apply_batch(std::mem::take(&mut batch)).map_err(io::Error::other)?;
            (n, bytes) = (0, 0);
        }
        Ok(())
    })?;
    tree.apply_batch(batch).map_err(io::Error::other)?;
    backend.flush().map_err(io::Error::other)?;
    if let Some(v) = applied {
        tree.insert(super::backend::META_APPLIED_INDEX, v).map_err(io::Error::other)?;
        backend.flush().map_err(io::Error::other)?;
    }
    Ok(())
}

/// Deletes the complete images in `dir` other than the one of index `keep` (not those being
/// written or received: they end in `.tmp` or `.part`).
pub fn remove_others(dir: &Path, keep: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let keep = path(dir, keep);
    for e in entries.flatten() {
        let p = e.path();
        if p != keep && p.extension().is_some_and(|x| x == "image") {
            let _ = std::fs::remove_file(p);
        }
    }
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct CrcReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Backend::open(&dir.path().join("a")).unwrap();
        for i in 0..10_000u32 {
            a.tree().insert(i.to_be_bytes(), vec![b'v'; (i % 100) as usize]).unwrap();
        }
        let img = path(dir.path(), 42);
        write(&a, &img).unwrap();
        let b = Backend::open(&dir.path().join("b")).unwrap();
        b.tree().insert(b"stale", b"gone after load".to_vec()).unwrap();
        load(&b, &img).unwrap();
        assert_eq!(b.tree().len(), 10_000);
        assert!(a.tree().iter().zip(b.tree().iter()).all(|(x, y)| x.unwrap() == y.unwrap()));
        // One flipped byte in the middle: refused, and the backend keeps what it had.
        let mut bytes = std::fs::read(&img).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&img, &bytes).unwrap();
        assert!(load(&b, &img).is_err());
        assert_eq!(b.tree().len(), 10_000);
        // Cut short: refused too.
        std::fs::write(&img, &bytes[..mid]).unwrap();
        assert!(check(&img).is_err());
    }

    #[test]
    fn only_other_complete_images_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["000000000000002a.image", "0000000000000007.image", "0000000000000050.image.part", "x.image.tmp"];
        for n in names {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        remove_others(dir.path(), 42);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["000000000000002a.image", "0000000000000050.image.part", "x.image.tmp"]);
    }
}
