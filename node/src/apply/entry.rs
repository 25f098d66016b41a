//! Committed raft entries as the applier takes them: raft/ turns raft-rs's entries into
//! these, so that nothing past raft/ knows raft-rs.

use crate::membership::Change;

pub struct Committed {
    pub index: u64,
    pub payload: Payload,
}

pub enum Payload {
    /// A leader's empty entry: it only moves the applied index.
    Empty,
    /// An `InternalRequest` (cairnpb), encoded.
    Request(bytes::Bytes),
    /// A membership change, and the waiter of the member that proposed it.
    ConfChange { waiter: u64, change: Change },
    /// An entry raft/ could not read: applying it stops the member (a replicated entry is
    /// never skipped).
    Unreadable(String),
}
