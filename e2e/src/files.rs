//! A directory tree as data, to check that something left it byte for byte as it was, or
//! which modes it made.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One entry: its mode bits (permissions only) and, for a file, its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub dir: bool,
    pub bytes: Vec<u8>,
}

/// Every file and dir under `root` (itself included), by path relative to it.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let meta = std::fs::symlink_metadata(at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
    let rel = at.strip_prefix(root).expect("under root").to_path_buf();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        out.insert(rel, Entry { mode, dir: true, bytes: Vec::new() });
        let mut children: Vec<PathBuf> =
            std::fs::read_dir(at).expect("read dir").map(|e| e.expect("dir entry").path()).collect();
        children.sort();
        for c in children {
            walk(root, &c, out);
        }
    } else {
        let bytes = std::fs::read(at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
        out.insert(rel, Entry { mode, dir: false, bytes });
    }
}

/// What differs between two trees, as lines (empty when they are equal).
pub fn differences(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => out.push(format!("{} was removed", p.display())),
            Some(a) if a.mode != b.mode => out.push(format!("{}: mode {:o} -> {:o}", p.display(), b.mode, a.mode)),
            Some(a) if a.bytes != b.bytes => out.push(format!(
                "{}: {} bytes -> {} bytes, content changed",
                p.display(),
                b.bytes.len(),
                a.bytes.len()
            )),
            Some(_) => {}
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("{} was created", p.display()));
    }
    out
}

/// Copies a tree (files and dirs, with their modes).
pub fn copy_tree(from: &Path, to: &Path) {
    for (rel, e) in tree(from) {
        let dest = to.join(&rel);
        if e.dir {
            std::fs::create_dir_all(&dest).expect("create dir");
        } else {
            std::fs::write(&dest, &e.bytes).expect("write file");
        }
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(e.mode)).expect("set mode");
    }
}
