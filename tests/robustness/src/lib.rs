//! Robustness checks for etcd-compatible stores, modelled on etcd's `tests/robustness`.
//!
//! A runner drives clients against a cluster (kvstore or etcd) while injecting faults, records
//! every client operation and every watch response as a [`check::history::History`], and hands
//! it to [`check::check`], which returns a [`check::Report`] with one verdict per checker.
//!
//! How it's structured (all under [`mod@check`]):
//! - the recorded history: `history` (operations), `events` (watches), `keys` (key ranges and
//!   the JSON form of bytes);
//! - etcd's semantics: `model` (the store state and what a request does to it), `etcd` (error
//!   texts, Txn compares, which observed answer fits the model's);
//! - linearizability: `patch` (Unknown writes resolved by watch events), `roles` (what the
//!   search must place, may place, or leaves out), `hints` (watch events that guide it),
//!   `prune` (revision owners and identical optional writes: branches no linearization can
//!   take), `timeline` (calls and returns in time order), `linearizable` (the search);
//! - after a linearization: `replay` (the store at every revision, its events, what is in
//!   doubt), `reads` (stale and serializable reads), `expected` and `watch` (etcd's watch
//!   guarantees);
//! - `describe`: one-line descriptions for failure messages.

pub mod check;
pub mod runner;

pub use check::{Report, Status, Verdict, check};
