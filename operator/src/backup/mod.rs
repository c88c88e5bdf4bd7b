//! Backups and restore: when backups are due ([`schedule`]), which are kept ([`retention`]),
//! and the restore procedure as a state machine ([`restore`]). All pure; the controller does
//! the I/O.

pub mod objects;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod upload;
