//! `crdgen`: writes the CairnCluster CRD to crds/ (or standard output with `-`).

fn main() -> std::io::Result<()> {
    let yaml = cairn_operator::crd::crd_yaml();
    match std::env::args().nth(1).as_deref() {
        Some("-") => print!("{yaml}"),
        Some(path) => std::fs::write(path, yaml)?,
        None => {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/cairnclusters.cairn.dev.yaml");
            std::fs::write(&path, yaml)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
