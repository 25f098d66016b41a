//! A backend image: every record of the backend as of one applied index. It is what a raft
//! snapshot carries to a member behind the leader's compacted log.
//!
//! Format: `cairn_api::snapshot::image` (what Maintenance.Snapshot streams). Written to a
//! temporary name and renamed, so an image under its final name is complete.

use super::backend::{Backend, BackendWriter};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use cairn_api::snapshot::image::{END, MAGIC};

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
    for item in backend.iter() {
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

/// Makes the backend hold exactly the image's records. Checked first, so a damaged image
/// leaves the backend as it was.
pub fn load(writer: &BackendWriter, src: &Path) -> io::Result<()> {
    load_reporting(writer, src, |_| {})
}

/// `load`, telling `loaded` how many bytes of the image each record took.
pub fn load_reporting(writer: &BackendWriter, src: &Path, mut loaded: impl FnMut(u64)) -> io::Result<()> {
    check(src)?;
    writer.clear().map_err(io::Error::other)?;
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
        if n == super::backend::COPY_BATCH || bytes >= super::backend::COPY_BATCH_BYTES {
            writer.apply(std::mem::take(&mut batch)).map_err(io::Error::other)?;
            (n, bytes) = (0, 0);
        }
        Ok(())
    })?;
    writer.apply(batch).map_err(io::Error::other)?;
    writer.flush().map_err(io::Error::other)?;
    if let Some(v) = applied {
        let mut last = sled::Batch::default();
        last.insert(super::backend::META_APPLIED_INDEX, v);
        writer.apply(last).map_err(io::Error::other)?;
        writer.flush().map_err(io::Error::other)?;
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
        let (a, aw) = Backend::open(&dir.path().join("a")).unwrap();
        let mut batch = sled::Batch::default();
        for i in 0..10_000u32 {
            batch.insert(&i.to_be_bytes()[..], vec![b'v'; (i % 100) as usize]);
        }
        aw.apply(batch).unwrap();
        let img = path(dir.path(), 42);
        write(&a, &img).unwrap();
        let (b, bw) = Backend::open(&dir.path().join("b")).unwrap();
        let mut stale = sled::Batch::default();
        stale.insert(&b"stale"[..], &b"gone after load"[..]);
        bw.apply(stale).unwrap();
        load(&bw, &img).unwrap();
        assert_eq!(b.len(), 10_000);
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x.unwrap() == y.unwrap()));
        // One flipped byte in the middle: refused, and the backend keeps what it had.
        let mut bytes = std::fs::read(&img).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&img, &bytes).unwrap();
        assert!(load(&bw, &img).is_err());
        assert_eq!(b.len(), 10_000);
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
