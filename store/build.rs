//! Compiles the etcd v3 wire protos and our peer protocol without a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/rpc.proto",
        "proto/kv.proto",
        "proto/auth.proto",
        "proto/raft.proto",
    ];
    for f in protos {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(["proto/rpc.proto", "proto/raft.proto"], ["proto"])?;
    // The descriptors drive the HTTP/JSON gateway's encoding (proto3 JSON, as grpc-gateway).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // The etcd messages travel inside Raft entries too: give them serde.
    tonic_prost_build::configure()
        .type_attribute(
            ".etcdserverpb",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .type_attribute(".mvccpb", "#[derive(serde::Serialize, serde::Deserialize)]")
        .type_attribute(".authpb", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(fds)?;
    Ok(())
}
