//! Lease ids the server chooses, made as etcd makes request ids: the member id's low 16 bits,
//! then 40 bits of milliseconds at start, then a counter, so that two members (or two runs of
//! one) do not hand out the same id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const SUFFIX_BITS: u32 = 48;

pub struct LeaseIdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl LeaseIdGenerator {
    pub fn new(member_id: u64) -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        LeaseIdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((millis & ((1 << 40) - 1)) << 8),
        }
    }

    /// A positive id (lease ids are int64 on the wire).
    pub fn next(&self) -> i64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        let id = self.prefix | (suffix & ((1 << SUFFIX_BITS) - 1));
        (id & (i64::MAX as u64)) as i64
    }
}
