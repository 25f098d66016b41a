//! Leases. Keys may only be attached to a lease that exists; granting, keep-alive and expiry
//! come with the Lease service, and until then no lease can exist, so every lease id a put
//! names is (correctly) "not found".

use std::collections::HashSet;
use std::sync::RwLock;

#[derive(Default)]
pub struct Lessor {
    leases: RwLock<HashSet<i64>>,
}

impl Lessor {
    pub fn exists(&self, id: i64) -> bool {
        self.leases.read().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }
}
