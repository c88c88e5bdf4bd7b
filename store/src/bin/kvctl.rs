//! `kvctl`: an etcdctl-compatible command line for kvstore (and etcd).

fn main() {}
