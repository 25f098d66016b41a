//! Replays deltas into a restored member's MVCC store, offline, at their original revisions:
//! every change is made again through the same write path the applier uses, and the store
//! must then give it the create revision, mod revision and version the source gave it. Any
//! difference means the deltas do not continue the snapshot, and the restore stops there.
//!
//! A put keeps its lease only if that lease is in the restored snapshot: a lease granted
//! after the full snapshot is not in any delta (leases are not keys), so its keys come back
//! without one, as keys that never expire.

use anyhow::bail;
use cairn_api::proto::cairnpb::DeltaRecord;
use cairn_api::proto::mvccpb::event::EventType;
use cairn_api::proto::mvccpb::KeyValue;
use cairn_backup::catalog::{DeltaName, Target};
use cairn_node::storage::backend::BackendWriter;
use cairn_node::storage::mvcc::{KeyRange, MvccStore};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// The store's revision afterwards.
    pub revision: i64,
    /// The target was reached: no later delta is needed.
    pub reached: bool,
    pub changes: u64,
    /// Puts whose lease was not in the snapshot, restored without one.
    pub dropped_leases: u64,
}

pub fn replay(
    store: &MvccStore,
    writer: &BackendWriter,
    name: &DeltaName,
    rec: &DeltaRecord,
    target: Target,
) -> anyhow::Result<Replayed> {
    let key = name.key();
    let mut out = Replayed { revision: store.current_revision(), ..Default::default() };
    let mut txn = store.write(writer);
    for rev in &rec.revisions {
        if rev.revision <= txn.rev() {
            continue; // before the full snapshot, or replayed from an earlier delta
        }
        let past = match target {
            Target::Latest => false,
            Target::Revision(r) => rev.revision > r,
            Target::Time(ms) => rev.observed_unix_ms > ms,
        };
        if past {
            out.reached = true;
            break;
        }
        if rev.revision != txn.rev() + 1 {
            bail!(
                "delta {key}: revision {} does not follow revision {}: revisions are missing",
                rev.revision,
                txn.rev()
            );
        }
        for ev in &rev.events {
            let Some(want) = &ev.kv else { bail!("delta {key}: an event without a key at revision {}", rev.revision) };
            let before = txn.event_count();
            if ev.r#type == EventType::Delete as i32 {
                if txn.delete_range(&KeyRange::Single(want.key.clone())) != 1 {
                    bail!(
                        "delta {key}: revision {} deletes {:?}, which the restore does not hold",
                        rev.revision,
                        show(&want.key)
                    );
                }
            } else {
                let lease = if want.lease != 0 && !lease_exists(store, want.lease)? {
                    out.dropped_leases += 1;
                    0
                } else {
                    want.lease
                };
                txn.put(&want.key, want.value.clone(), lease);
            }
            let got = txn.events_since(before)[0].kv.as_ref().expect("the store's events carry their key");
            if !same_revisions(got, want) {
                bail!(
                    "delta {key}: {:?} replays at revision {}/{} version {}, the source had {}/{} version {}: the deltas do not continue the snapshot",
                    show(&want.key),
                    got.create_revision,
                    got.mod_revision,
                    got.version,
                    want.create_revision,
                    want.mod_revision,
                    want.version
                );
            }
            out.changes += 1;
        }
        txn.finish_entry();
    }
    out.revision = txn.rev();
    // Applied index 0: a restored member has no raft history (the restore removes it anyway).
    txn.commit(0)?;
    Ok(out)
}

fn same_revisions(got: &KeyValue, want: &KeyValue) -> bool {
    got.mod_revision == want.mod_revision && got.create_revision == want.create_revision && got.version == want.version
}

fn lease_exists(store: &MvccStore, id: i64) -> anyhow::Result<bool> {
    Ok(store.backend().get(cairn_node::lease::record_key(id))?.is_some())
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}
