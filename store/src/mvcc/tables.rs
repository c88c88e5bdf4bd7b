//! Every redb table of the state machine database, and the small codecs for their values.
//!
//! Keys are typed (byte slices, integers, tuples) so redb orders them; values are prost-encoded
//! `mvccpb.KeyValue` records or bincode-encoded structs of ours.

use prost::Message;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pb::KeyValue;

/// Live keys at the current revision: key → encoded `KeyValue`. A live version is stored here
/// only (since data format 3), and moves to `KV_HISTORY` when a write supersedes it.
pub const KV_LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_latest");
/// Superseded versions and tombstones: (key, mod revision) → encoded `KeyValue`;
/// `version == 0` marks a tombstone. [`crate::mvcc::read::Versions`] merges them with
/// `KV_LATEST` into every version of a key.
pub const KV_HISTORY: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("kv_history");
/// Which key changed at which (revision, sub-revision): feeds watch replay and compaction.
pub const REV_INDEX: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("rev_index");
/// Scalars of the state machine (revision, compaction point, raft pointers).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Leases: id → encoded [`LeaseRecord`].
pub const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
/// Keys attached to a lease: (lease id, key) → ().
pub const LEASE_KEYS: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("lease_keys");
/// Published member attributes: member id → encoded [`MemberAttrs`].
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");
/// Active alarms: (member id, alarm type) → ().
pub const ALARMS: TableDefinition<(u64, i32), ()> = TableDefinition::new("alarms");

/// META key: the current main revision.
pub const META_REVISION: &str = "revision";
/// META key: the compaction point.
pub const META_COMPACT: &str = "compact_revision";
/// META key: the last applied raft log id (bincode).
pub const META_LAST_APPLIED: &str = "last_applied";
/// META key: the last applied membership (bincode).
pub const META_MEMBERSHIP: &str = "membership";
/// META key: members that asked to be voters and wait for promotion (bincode `Vec<u64>`).
pub const META_PENDING_VOTERS: &str = "pending_voters";

/// A lease as the state machine keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The TTL granted, in seconds.
    pub ttl: i64,
}

/// What a started member publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    /// `--name`.
    pub name: String,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
}

/// Encode a `KeyValue` record.
pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    kv.encode_to_vec()
}

/// Decode a `KeyValue` record.
pub fn decode_kv(bytes: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(bytes).map_err(|e| Error::decode("key-value record", e))
}

/// Encode with bincode.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("bincode encoding of an in-memory value cannot fail")
}

/// Decode with bincode.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| Error::decode(what, e))
}

/// Read an i64 scalar from META (0 when absent).
pub fn meta_i64(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<i64> {
    Ok(match table.get(key)? {
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| Error::decode("meta scalar", key))?;
            i64::from_be_bytes(b)
        }
        None => 0,
    })
}
