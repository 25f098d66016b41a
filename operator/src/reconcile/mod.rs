//! Reconciliation (DESIGN §4): observe → plan (pure) → act, one step at a time, then status.

pub mod act;
pub mod observe;
pub mod plan;
pub mod recovery;
pub mod restore;
pub mod status;
