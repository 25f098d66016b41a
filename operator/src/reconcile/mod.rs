//! Reconciliation (DESIGN §4): observe → plan (pure) → act, one step at a time.

pub mod plan;
