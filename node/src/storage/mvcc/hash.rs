//! etcd's HashKV: a CRC-32C over the history up to a revision, in etcd's own byte layout, so
//! the same writes give the same hash on every member, and on etcd itself. etcd hashes its
//! "key" bucket: the bucket name, then each record in revision order, its key being the
//! revision (8 bytes main, '_', 8 bytes sub, big-endian; a tombstone adds 't') and its value
//! the mvccpb.KeyValue (a tombstone's holds just the key).
//!
//! Which compacted records count follows etcd 3.4 exactly, quirk included: below the
//! compaction only the values visible at the hashed revision count, unless no key is
//! visible then, in which case every record the compaction kept counts.

use super::revision::{self, Revision};
use super::store::MvccStore;
use super::MvccError;
use crate::proto::cairnpb::TombstoneRecord;
use crate::proto::mvccpb::KeyValue;
use crate::storage::backend::PREFIX_TOMBSTONES;
use crate::storage::crc32c::Crc32c;
use prost::Message;

fn etcd_rev_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// What HashKV answers: the hash, the compaction revision, and the revision hashed.
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    pub revision: i64,
}

impl MvccStore {
    /// The hash of the history up to `rev` (0: the current revision).
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash, MvccError> {
        // The read lock keeps compaction from moving while we read.
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        if rev > 0 && rev <= st.compact_rev {
            return Err(MvccError::Compacted);
        }
        if rev > st.rev {
            return Err(MvccError::FutureRev);
        }
        let upto = if rev == 0 { st.rev } else { rev };
        let backend_err = |e: sled::Error| MvccError::Backend(e.to_string());
        let corrupt = |e: crate::storage::backend::BackendError| MvccError::Backend(e.to_string());
        // (revision, tombstone, value as etcd stores it), merged from puts and tombstones.
        let mut records: Vec<(Revision, bool, Vec<u8>)> = Vec::new();
        let (lo, hi) = (Revision { main: 0, sub: 0 }, Revision { main: upto + 1, sub: 0 });
        let visible = st.index.visible_revisions(upto);
        for item in self.backend.range(lo.to_key()..hi.to_key()) {
            let (k, v) = item.map_err(backend_err)?;
            let r = Revision::from_key(&k).ok_or_else(|| MvccError::Backend("bad revision key".into()))?;
            if r.main <= st.compact_rev {
                // Kept by the compaction (not merely not deleted yet), and visible at `upto`
                // unless nothing is.
                let kv = revision::decode_put(&k, &v).map_err(corrupt)?;
                let counts = if visible.is_empty() { st.index.holds(&kv.key, r) } else { visible.contains(&r) };
                if !counts {
                    continue;
                }
            }
            records.push((r, false, v.to_vec()));
        }
        let mut tlo = [0u8; 9];
        tlo[0] = PREFIX_TOMBSTONES;
        tlo[1..].copy_from_slice(&((st.compact_rev + 1) as u64).to_be_bytes());
        let mut thi = tlo;
        thi[1..].copy_from_slice(&((upto + 1) as u64).to_be_bytes());
        for item in self.backend.range(tlo..thi) {
            let (k, v) = item.map_err(backend_err)?;
            let main = revision::tombstones_main(&k).ok_or_else(|| MvccError::Backend("bad tombstone key".into()))?;
            let rec = TombstoneRecord::decode(&v[..]).map_err(|e| MvccError::Backend(e.to_string()))?;
            for (sub, key) in rec.subs.into_iter().zip(rec.keys) {
                let kv = KeyValue { key, ..Default::default() };
                records.push((Revision { main, sub }, true, kv.encode_to_vec()));
            }
        }
        records.sort_unstable_by_key(|(r, ..)| *r);
        let mut h = Crc32c::new();
        h.update(b"key");
        for (r, tombstone, value) in records {
            h.update(&etcd_rev_key(r, tombstone));
            h.update(&value);
        }
        // -1 until the first compaction, as etcd reports it.
        Ok(KvHash { hash: h.finish(), compact_revision: st.compact_rev, revision: upto })
    }
}
