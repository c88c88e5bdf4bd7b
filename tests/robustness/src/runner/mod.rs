//! The runner: a cluster of real processes (kvstore, or etcd for calibration), client traffic
//! and watch recorders, fault injection, and one [`run::run`] that ties them together and
//! hands the recorded history to the checkers.

pub mod cluster;
pub mod faults;
pub mod partition;
pub mod report;
pub mod run;
pub mod traffic;
pub mod watchers;
