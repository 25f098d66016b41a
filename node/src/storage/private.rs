//! Files and dirs only their owner can read, as etcd makes them (0700 dirs, 0600 files): a
//! member's data dir holds every key, so no other local user may read it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each 0700 (as Go's MkdirAll(dir, 0700) does).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates (or truncates) a file only its owner can read and write.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(path)
}

/// Makes an existing dir private if it is not, with etcd's warning. A dir this process may
/// not change (another owner, a read-only mount) keeps its mode: the warning still says why.
pub fn restrict_dir(dir: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode == DIR_MODE {
        return Ok(());
    }
    let changed = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE));
    tracing::warn!(
        "check file permission: directory {:?} exist, but the permission is {:?}. The recommended \
         permission is \"-rwx------\" to prevent possible unprivileged access to the data; {}",
        dir.display().to_string(),
        mode_string(mode, true),
        match &changed {
            Ok(()) => "changed it to -rwx------".to_string(),
            Err(e) => format!("could not change it: {e}"),
        }
    );
    Ok(())
}

/// `ls -l`'s form of a mode, as Go prints an os.FileMode ("drwxr-xr-x").
fn mode_string(mode: u32, dir: bool) -> String {
    let mut s = String::from(if dir { "d" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_private_and_an_open_dir_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        for d in [dir.path().join("a"), nested.clone()] {
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        let f = nested.join("f");
        create_file(&f).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).unwrap();
        restrict_dir(&nested).unwrap();
        assert_eq!(std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(mode_string(0o755, true), "drwxr-xr-x");
    }
}
