//! Integration tests of kube-sim: the server in-process on an ephemeral port, driven by kube-rs
//! and by the real kubectl and helm binaries.

mod common;
mod helm;
mod kube_rs;
mod kubectl;
mod semantics;
