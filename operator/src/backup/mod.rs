//! Backups and restore: when backups are due ([`schedule`]), which are kept ([`retention`]),
//! and the restore procedure as a state machine ([`restore`]). All pure; the controller does
//! the I/O.

pub mod objects;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod upload;

/// A time as status and metadata record it: RFC 3339 in UTC, in milliseconds (a backup that
/// fails in the same second as the last success must still order after it).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
