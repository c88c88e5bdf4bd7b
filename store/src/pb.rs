//! Generated protobuf and gRPC code: the etcd v3 wire contract and our peer protocol.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's `mvccpb` package: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb` package.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `etcdserverpb` package: every client-facing service.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Our peer-port protocol between members.
pub mod kvraftpb {
    tonic::include_proto!("kvraftpb");
}

pub use etcdserverpb::*;
pub use mvccpb::KeyValue;
