//! Generates the etcd v3 API and Cairn's internal protos. protoc comes vendored so a fresh
//! machine needs nothing but the Rust toolchain.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/cairnpb/internal.proto",
        "proto/cairnpb/peer.proto",
        "proto/cairnpb/backup.proto",
    ];
    tonic_prost_build::configure().build_server(true).build_client(true).compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
