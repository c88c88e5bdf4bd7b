//! Integration tests: real `kvstore` processes driven by real etcdctl and the `etcd-client`
//! crate.

mod bad_input;
mod common;
mod crash;
mod etcd_client_crate;
mod etcdctl;
mod forwarding;
mod http;
mod kvctl;
mod maintenance;
mod membership;
mod snapshot;
mod watch_gaps;
mod watch_lease;
