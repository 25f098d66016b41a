//! `crdgen`: writes the CRDs to crds/ (or to standard output with `-`, as one YAML stream).

fn main() -> std::io::Result<()> {
    let files = cairn_operator::crds::files();
    match std::env::args().nth(1).as_deref() {
        Some("-") => {
            let all: Vec<String> = files.into_iter().map(|(_, yaml)| yaml).collect();
            print!("{}", all.join("---\n"));
        }
        dir => {
            let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
            let dir = dir.map(std::path::PathBuf::from).unwrap_or(default);
            for (name, yaml) in files {
                let path = dir.join(name);
                std::fs::write(&path, yaml)?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
