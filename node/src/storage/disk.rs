//! Free space on the data dir's file system. A member that runs out of disk can no longer
//! write its WAL and must stop; so before that, while a reserve is left, it raises etcd's
//! NOSPACE alarm: writes that grow the store are refused cluster-wide, and the member keeps
//! serving reads, deletes and compactions (which the reserve leaves room for).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a measurement may be: statvfs per request is cheap, but not free.
const MAX_AGE: Duration = Duration::from_millis(100);

pub struct DiskSpace {
    path: PathBuf,
    reserve: u64,
    measured: Mutex<Option<(Instant, u64)>>,
}

/// What a member keeps free for itself: room for a few of the largest requests in the WAL
/// and the backend each, and for the backend's own upkeep (sled writes in segments and
/// snapshots its page table).
pub fn reserve_for(max_request_bytes: usize) -> u64 {
    4 * max_request_bytes as u64 + (32 << 20)
}

impl DiskSpace {
    pub fn new(path: &Path, reserve: u64) -> DiskSpace {
        DiskSpace { path: path.to_path_buf(), reserve, measured: Mutex::new(None) }
    }

    /// Bytes an unprivileged process may still write there (None if it cannot be measured).
    pub fn available(&self) -> Option<u64> {
        let mut m = self.measured.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, bytes)) = *m {
            if at.elapsed() < MAX_AGE {
                return Some(bytes);
            }
        }
        let bytes = available(&self.path).ok()?;
        *m = Some((Instant::now(), bytes));
        Some(bytes)
    }

    /// Whether less than the reserve is left.
    pub fn low(&self) -> bool {
        self.available().is_some_and(|a| a < self.reserve)
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }
}

fn available(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a statvfs the call fills in.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_file_system_has_space_and_an_impossible_reserve_is_low() {
        let dir = tempfile::tempdir().unwrap();
        let d = DiskSpace::new(dir.path(), 0);
        assert!(d.available().unwrap() > 0);
        assert!(!d.low());
        assert!(DiskSpace::new(dir.path(), u64::MAX).low());
        assert!(DiskSpace::new(&dir.path().join("missing"), u64::MAX).available().is_none());
    }
}
