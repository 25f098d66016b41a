//! The keys a user may read, and those it may write: the union of its roles' permissions,
//! merged into sorted, disjoint spans once per change of the auth store, so that checking a
//! request is a binary search.
//!
//! A permission (and a request) names one key when its range end is empty, every key from
//! its key on when the range end is "\0", and `[key, range_end)` otherwise.

use crate::proto::authpb::{permission::Type, Role};

/// A half-open span of keys; `end: None` has no upper bound.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Span {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

/// The span one key alone occupies: `[key, key + "\0")`.
fn point(key: &[u8]) -> Span {
    let mut end = key.to_vec();
    end.push(0);
    Span { begin: key.to_vec(), end: Some(end) }
}

fn span(key: &[u8], range_end: &[u8]) -> Span {
    match range_end {
        [] => point(key),
        [0] => Span { begin: key.to_vec(), end: None },
        end => Span { begin: key.to_vec(), end: Some(end.to_vec()) },
    }
}

/// `a` ends before `b` (an unbounded end is after every key).
fn end_before(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// A union of spans, kept sorted and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    spans: Vec<Span>,
}

impl KeySet {
    fn from_spans(mut spans: Vec<Span>) -> KeySet {
        spans.sort_by(|a, b| a.begin.cmp(&b.begin));
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            if let Some(last) = merged.last_mut() {
                // Overlapping or touching: [a, b) and [b, c) cover [a, c).
                let reaches = last.end.as_ref().is_none_or(|e| s.begin <= *e);
                if reaches {
                    if end_before(&last.end, &s.end) {
                        last.end = s.end;
                    }
                    continue;
                }
            }
            merged.push(s);
        }
        KeySet { spans: merged }
    }

    /// The span holding `key`, if any.
    fn span_of(&self, key: &[u8]) -> Option<&Span> {
        let after = self.spans.partition_point(|s| s.begin.as_slice() <= key);
        let s = self.spans[..after].last()?;
        s.end.as_ref().is_none_or(|e| key < e.as_slice()).then_some(s)
    }

    /// Whether every key a request for `key`/`range_end` can touch is in the set (etcd's
    /// interval-tree Contains for ranges, Intersects for one key).
    pub fn covers(&self, key: &[u8], range_end: &[u8]) -> bool {
        let Some(held) = self.span_of(key) else { return false };
        let wanted = span(key, range_end);
        // The spans are merged, so the one holding the first key must reach the last.
        !end_before(&held.end, &wanted.end)
    }
}

/// What one user may read and write.
#[derive(Clone, Debug, Default)]
pub struct UserPerms {
    pub read: KeySet,
    pub write: KeySet,
}

impl UserPerms {
    /// The union of `roles`' permissions.
    pub fn merge<'a>(roles: impl IntoIterator<Item = &'a Role>) -> UserPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for perm in roles.into_iter().flat_map(|r| &r.key_permission) {
            let s = span(&perm.key, &perm.range_end);
            match Type::try_from(perm.perm_type) {
                Ok(Type::Read) => read.push(s),
                Ok(Type::Write) => write.push(s),
                Ok(Type::Readwrite) => {
                    read.push(s.clone());
                    write.push(s);
                }
                Err(_) => {}
            }
        }
        UserPerms { read: KeySet::from_spans(read), write: KeySet::from_spans(write) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::Permission;

    fn set(perms: &[(&str, &str)]) -> KeySet {
        KeySet::from_spans(perms.iter().map(|(k, e)| span(k.as_bytes(), e.as_bytes())).collect())
    }

    #[test]
    fn one_key() {
        let s = set(&[("foo", "")]);
        assert!(s.covers(b"foo", b""));
        assert!(!s.covers(b"foo0", b""));
        assert!(!s.covers(b"fo", b""));
        // A range starting at the key reaches past it.
        assert!(!s.covers(b"foo", b"fop"));
        assert!(s.covers(b"foo", b"foo\0"));
    }

    #[test]
    fn prefix_and_ranges() {
        let s = set(&[("a", "c")]);
        assert!(s.covers(b"a", b"c"));
        assert!(s.covers(b"b", b"bz"));
        assert!(!s.covers(b"b", b"d"));
        assert!(!s.covers(b"c", b""));
        assert!(!s.covers(b"a", b"\0"));
    }

    #[test]
    fn touching_spans_merge() {
        let s = set(&[("c", "e"), ("a", "c"), ("x", "")]);
        assert!(s.covers(b"a", b"e"));
        assert!(!s.covers(b"a", b"f"));
        assert!(s.covers(b"x", b""));
        assert!(!s.covers(b"e", b""));
    }

    #[test]
    fn unbounded() {
        let s = set(&[("m", "\0")]);
        assert!(s.covers(b"m", b"\0"));
        assert!(s.covers(b"zzz", b""));
        assert!(s.covers(b"n", b"\0"));
        assert!(!s.covers(b"a", b"\0"));
        let everything = set(&[("\0", "\0")]);
        assert!(everything.covers(b"\0", b"\0"));
        assert!(everything.covers(b"k", b"z"));
    }

    #[test]
    fn empty_set_covers_nothing() {
        assert!(!KeySet::default().covers(b"a", b""));
    }

    #[test]
    fn roles_merge_by_type() {
        let perm = |t: Type, k: &str, e: &str| Permission {
            perm_type: t as i32,
            key: k.as_bytes().to_vec(),
            range_end: e.as_bytes().to_vec(),
        };
        let r1 = Role { name: b"r1".to_vec(), key_permission: vec![perm(Type::Read, "a", "b")] };
        let r2 = Role {
            name: b"r2".to_vec(),
            key_permission: vec![perm(Type::Readwrite, "b", "c"), perm(Type::Write, "k", "")],
        };
        let p = UserPerms::merge([&r1, &r2]);
        assert!(p.read.covers(b"a", b"c"));
        assert!(!p.write.covers(b"a", b""));
        assert!(p.write.covers(b"b", b""));
        assert!(p.write.covers(b"k", b""));
        assert!(!p.read.covers(b"k", b""));
    }
}
