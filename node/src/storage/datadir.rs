//! Whose data dir this is. Cairn writes only to a data dir it made: `member/` holds a marker
//! naming the format (`member/cairn-format`), written before anything else. A data dir of
//! etcd's (the "swap the binary" case), or of a Cairn whose format this one does not know,
//! is refused before a single byte of it is changed.
//!
//! Layout of a Cairn member: `member/cairn-format`, `member/wal/` (segments),
//! `member/db` (sled), `member/snap/` (backend images). etcd's: `member/wal/*.wal` in its own
//! record format, `member/snap/db` (bbolt), `member/snap/*.snap`.

use std::path::{Path, PathBuf};

pub const MARKER: &str = "cairn-format";
/// The format this Cairn reads and writes.
pub const FORMAT: &str = "cairn data dir 1";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {}: {source}", path.display())]
    Io { source: std::io::Error, path: PathBuf },
    #[error(
        "{} {what}. Cairn never changes a data dir it did not create, and nothing in it was \
         changed. Start Cairn with another --data-dir{hint}",
        dir.display()
    )]
    Foreign { dir: PathBuf, what: String, hint: &'static str },
}

/// What a data dir holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// No member yet (or a first start that stopped before its WAL existed).
    Empty,
    /// A Cairn member's data, marked with this Cairn's format.
    Cairn,
    /// A Cairn member's data from before the marker existed: its WAL is Cairn's.
    Unmarked,
}

const ETCD_HINT: &str = ", and to copy etcd's keys into a running Cairn use `etcdctl make-mirror` \
                         (revisions are not kept)";

pub fn inspect(data_dir: &Path) -> Result<Found, DataDirError> {
    let member = data_dir.join("member");
    let io = |source, p: &Path| DataDirError::Io { source, path: p.to_path_buf() };
    let foreign = |what: String, hint| DataDirError::Foreign { dir: data_dir.to_path_buf(), what, hint };
    match std::fs::metadata(&member) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Empty),
        Err(e) => return Err(io(e, &member)),
        Ok(m) if !m.is_dir() => return Err(foreign("holds a file named member".into(), "")),
        Ok(_) => {}
    }
    let marker = member.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(f) if f.trim_end() == FORMAT => return Ok(Found::Cairn),
        Ok(f) => {
            return Err(foreign(
                format!(
                    "is marked {:?} in {}, a format this Cairn does not know (it reads {FORMAT:?}): \
                     a newer Cairn made it",
                    f.trim_end(),
                    marker.display()
                ),
                ", or run the Cairn that made it",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e, &marker)),
    }
    let etcd_db = member.join("snap").join("db");
    if etcd_db.is_file() {
        return Err(foreign(
            format!("is an etcd member's data dir ({} is etcd's database)", etcd_db.display()),
            ETCD_HINT,
        ));
    }
    let wal = member.join("wal");
    let segments = crate::storage::wal::segment_files(&wal).map_err(|e| io(e, &wal))?;
    let Some(first) = segments.first() else { return Ok(Found::Empty) };
    if crate::storage::wal::is_cairn_segment(first).map_err(|e| io(e, first))? {
        Ok(Found::Unmarked)
    } else {
        Err(foreign(format!("holds a WAL Cairn did not write ({}: etcd's format?)", first.display()), ETCD_HINT))
    }
}

/// Makes `data_dir/member` (0700, as every dir Cairn makes) and marks it as Cairn's, or
/// marks an existing Cairn member dir that predates the marker. Only for a data dir
/// `inspect` found Empty or Unmarked.
pub fn claim(data_dir: &Path) -> Result<(), DataDirError> {
    let member = data_dir.join("member");
    let io = |source, p: &Path| DataDirError::Io { source, path: p.to_path_buf() };
    crate::storage::private::create_dir_all(&member).map_err(|e| io(e, &member))?;
    let marker = member.join(MARKER);
    let tmp = member.join(format!("{MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = crate::storage::private::create_file(&tmp)?;
        f.write_all(format!("{FORMAT}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &marker)?;
        std::fs::File::open(&member)?.sync_all()
    };
    write().map_err(|e| io(e, &marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_marked_unmarked_and_foreign_dirs_are_told_apart_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        assert_eq!(inspect(&d).unwrap(), Found::Empty);
        std::fs::create_dir_all(d.join("member/wal")).unwrap();
        assert_eq!(inspect(&d).unwrap(), Found::Empty, "a start that stopped before its WAL");
        claim(&d).unwrap();
        assert_eq!(inspect(&d).unwrap(), Found::Cairn);
        std::fs::write(d.join("member").join(MARKER), "cairn data dir 2\n").unwrap();
        let e = inspect(&d).unwrap_err().to_string();
        assert!(e.contains("\"cairn data dir 2\"") && e.contains("nothing in it was changed"), "{e}");

        let etcd = dir.path().join("etcd");
        std::fs::create_dir_all(etcd.join("member/snap")).unwrap();
        std::fs::write(etcd.join("member/snap/db"), b"bolt").unwrap();
        let e = inspect(&etcd).unwrap_err().to_string();
        assert!(e.contains("is an etcd member's data dir"), "{e}");

        let etcd_wal = dir.path().join("etcd-wal");
        std::fs::create_dir_all(etcd_wal.join("member/wal")).unwrap();
        let seg = etcd_wal.join("member/wal/0000000000000000-0000000000000000.wal");
        std::fs::write(&seg, [0u8; 4096]).unwrap();
        let e = inspect(&etcd_wal).unwrap_err().to_string();
        assert!(e.contains("holds a WAL Cairn did not write"), "{e}");
        assert_eq!(std::fs::read(&seg).unwrap(), vec![0u8; 4096]);
    }
}
