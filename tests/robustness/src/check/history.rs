//! The recorded history of a run: every client operation (request, response, call and return
//! times) and every watch stream (its request and each response received). The runner fills
//! these in; the checkers only read them. Everything (de)serializes so a history can be dumped
//! to JSON and checked again later; keys and values are written as strings when they are UTF-8.

use serde::{Deserialize, Serialize};

pub use super::events::{EventKind, WatchEvent, WatchRecord, WatchResponse, WatchSpec};
use super::keys::text;
pub use super::keys::{in_range, ranges_overlap};

/// A key as etcd returns it in a range response or a watch event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(with = "text")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "text")]
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last delete).
    pub create_revision: i64,
    /// Revision of the last change of the key.
    pub mod_revision: i64,
    /// Number of puts since the key was created (1 for the creating put).
    pub version: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// What a Txn compare looks at on its key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value; a missing key never satisfies a value compare.
    Value(#[serde(with = "text")] Vec<u8>),
    /// The version; 0 for a missing key.
    Version(i64),
    /// The create revision; 0 for a missing key.
    CreateRevision(i64),
    /// The mod revision; 0 for a missing key.
    ModRevision(i64),
    /// The attached lease; 0 for a missing key.
    Lease(i64),
}

/// How a Txn compare relates the key's field to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareResult {
    /// field == target
    Equal,
    /// field != target
    NotEqual,
    /// field > target
    Greater,
    /// field < target
    Less,
}

/// One Txn condition on a single key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    #[serde(with = "text")]
    pub key: Vec<u8>,
    /// The relation that must hold.
    pub result: CompareResult,
    /// The field and the value it is compared with.
    pub target: CompareTarget,
}

/// An operation inside a Txn branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnOp {
    /// Read `[key, range_end)` at the txn's revision.
    Range {
        /// First key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// End of the range, see [`in_range`].
        #[serde(with = "text")]
        range_end: Vec<u8>,
    },
    /// Write one key.
    Put {
        /// The key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// The value (unique per put in the runner's traffic).
        #[serde(with = "text")]
        value: Vec<u8>,
        /// Lease to attach, 0 for none.
        lease: i64,
    },
    /// Delete `[key, range_end)`.
    DeleteRange {
        /// First key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// End of the range, see [`in_range`].
        #[serde(with = "text")]
        range_end: Vec<u8>,
    },
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// Read `[key, range_end)`, at `revision` when it is not 0.
    Range {
        /// First key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// End of the range, see [`in_range`].
        #[serde(with = "text")]
        range_end: Vec<u8>,
        /// Revision to read at, 0 for the latest.
        revision: i64,
        /// Most keys returned, 0 for all.
        limit: i64,
        /// Served from the member's local state without a read index.
        serializable: bool,
    },
    /// Write one key.
    Put {
        /// The key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// The value (unique per put in the runner's traffic).
        #[serde(with = "text")]
        value: Vec<u8>,
        /// Lease to attach, 0 for none.
        lease: i64,
    },
    /// Delete `[key, range_end)`.
    DeleteRange {
        /// First key.
        #[serde(with = "text")]
        key: Vec<u8>,
        /// End of the range, see [`in_range`].
        #[serde(with = "text")]
        range_end: Vec<u8>,
    },
    /// A transaction: `success` runs when every compare holds, else `failure`.
    Txn {
        /// Conditions, all of which must hold.
        compare: Vec<Compare>,
        /// Operations when they hold.
        success: Vec<TxnOp>,
        /// Operations when one does not.
        failure: Vec<TxnOp>,
    },
    /// Grant a lease; the server chooses its id.
    LeaseGrant {
        /// Requested time to live in seconds.
        ttl: i64,
    },
    /// Revoke a lease, deleting its keys.
    LeaseRevoke {
        /// The lease.
        id: i64,
    },
    /// Refresh a lease (changes nothing in the model).
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// Compact the history up to `revision`.
    Compact {
        /// The new compact revision.
        revision: i64,
    },
}

/// The result of one operation of the executed Txn branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnOpResult {
    /// What a Range read.
    Range {
        /// The keys returned (at most the limit).
        kvs: Vec<KeyValue>,
        /// Number of keys in the range.
        count: i64,
    },
    /// A Put took place.
    Put,
    /// How many keys a DeleteRange deleted.
    DeleteRange {
        /// Keys deleted.
        deleted: i64,
    },
}

/// A response, or the lack of one. Every successful response carries its header revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Range`].
    Range {
        /// Header revision.
        revision: i64,
        /// Keys returned.
        kvs: Vec<KeyValue>,
        /// Number of keys in the range regardless of the limit.
        count: i64,
    },
    /// Answer to [`Request::Put`].
    Put {
        /// Header revision (the put's revision).
        revision: i64,
    },
    /// Answer to [`Request::DeleteRange`].
    DeleteRange {
        /// Header revision.
        revision: i64,
        /// Keys deleted.
        deleted: i64,
    },
    /// Answer to [`Request::Txn`].
    Txn {
        /// Header revision.
        revision: i64,
        /// Whether the success branch ran.
        succeeded: bool,
        /// One result per operation of the branch that ran.
        results: Vec<TxnOpResult>,
    },
    /// Answer to [`Request::LeaseGrant`].
    LeaseGrant {
        /// Header revision.
        revision: i64,
        /// The id the server chose.
        id: i64,
    },
    /// Answer to [`Request::LeaseRevoke`].
    LeaseRevoke {
        /// Header revision.
        revision: i64,
    },
    /// Answer to [`Request::LeaseKeepAlive`]; a ttl above 0 means the lease existed.
    LeaseKeepAlive {
        /// Remaining time to live.
        ttl: i64,
    },
    /// Answer to [`Request::Compact`] (its header revision is not checked).
    Compact {
        /// Header revision.
        revision: i64,
    },
    /// A definite answer that changed nothing, with etcd's error text, e.g.
    /// "etcdserver: mvcc: required revision has been compacted",
    /// "etcdserver: requested lease not found",
    /// "etcdserver: mvcc: required revision is a future revision".
    Refused(String),
    /// No answer or an ambiguous error (timeout, unavailable, connection lost, no leader): the
    /// operation may or may not have taken effect.
    Unknown(String),
    /// Never recorded by a runner: patching sets it on an Unknown Txn once a watch showed one
    /// of its puts, at `revision`. The branch that ran is known; its results are not.
    Persisted {
        /// Revision the txn took effect at.
        revision: i64,
        /// Whether the branch holding the seen put is the success branch.
        succeeded: bool,
    },
}

impl Response {
    /// The header revision of a successful response.
    pub fn revision(&self) -> Option<i64> {
        match self {
            Response::Range { revision, .. }
            | Response::Put { revision }
            | Response::DeleteRange { revision, .. }
            | Response::Txn { revision, .. }
            | Response::LeaseGrant { revision, .. }
            | Response::LeaseRevoke { revision }
            | Response::Compact { revision }
            | Response::Persisted { revision, .. } => Some(*revision),
            Response::LeaseKeepAlive { .. } | Response::Refused(_) | Response::Unknown(_) => None,
        }
    }

    /// Whether the client got no definite answer.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Response::Unknown(_))
    }
}

/// One client call, from the moment it was sent to its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Client id; a client has at most one call in flight.
    pub client: u32,
    /// Member the client talked to.
    pub member: usize,
    /// Nanoseconds since the run started, when the request was sent.
    pub call: u64,
    /// Nanoseconds since the run started, when the answer came (for Unknown: when the client
    /// gave up).
    pub ret: u64,
    /// What was asked.
    pub request: Request,
    /// What came back.
    pub response: Response,
}

/// A whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Client operations, in any order.
    pub operations: Vec<Operation>,
    /// Watch streams.
    pub watches: Vec<WatchRecord>,
}

impl History {
    /// The history as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A history read back from [`History::to_json`].
    pub fn from_json(json: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(json)
    }
}
