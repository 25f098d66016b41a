//! crds/ is generated: a change to the types without `crdgen` fails here.

#[test]
fn crds_match_the_types() {
    for (name, yaml) in cairn_operator::crds::files() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds").join(name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == yaml, "{} is stale: run `cargo run -p cairn-operator --bin crdgen`", path.display());
    }
}
