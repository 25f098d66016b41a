//! The CairnCluster operator. Reconciliation arrives with the operator issues; until then the
//! binary says so instead of pretending to manage anything.

fn main() {
    eprintln!("cairn-operator {}: no controllers yet (see the operator issues)", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
