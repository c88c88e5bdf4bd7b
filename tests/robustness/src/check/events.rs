//! The watch side of a recorded history: what each watch asked for and every response it
//! received (events, progress notifications, creation and cancellation). Re-exported from
//! `history`, where the runner finds every recorded type.

use serde::{Deserialize, Serialize};

use super::history::KeyValue;
use super::keys::text;

/// What a watch asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSpec {
    /// First key.
    #[serde(with = "text")]
    pub key: Vec<u8>,
    /// End of the range, see [`in_range`](super::keys::in_range).
    #[serde(with = "text")]
    pub range_end: Vec<u8>,
    /// First revision wanted, 0 for "from now".
    pub start_revision: i64,
    /// Whether events carry the previous key-value.
    pub prev_kv: bool,
    /// Whether the server sends progress notifications.
    pub progress_notify: bool,
    /// Leave out Put events.
    pub no_put: bool,
    /// Leave out Delete events.
    pub no_delete: bool,
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A key was written.
    Put,
    /// A key was deleted.
    Delete,
}

/// One watch event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// Put or Delete.
    pub kind: EventKind,
    /// For Put the new key-value; for Delete the key with `mod_revision` = the delete's revision
    /// (other fields as etcd sends them: zero).
    pub kv: KeyValue,
    /// The key-value before this event, when asked for and known.
    pub prev_kv: Option<KeyValue>,
}

/// One message of a watch stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// Nanoseconds since the run started, when it was received.
    pub time: u64,
    /// Header revision.
    pub revision: i64,
    /// Events, in revision order.
    pub events: Vec<WatchEvent>,
    /// The watch was created.
    pub created: bool,
    /// The watch was canceled.
    pub canceled: bool,
    /// When canceled for compaction, the compact revision.
    pub compact_revision: i64,
    /// Why it was canceled.
    pub cancel_reason: String,
}

impl WatchResponse {
    /// A progress notification, as etcd's clientv3 `IsProgressNotify` tells it.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
            && !self.created
            && !self.canceled
            && self.compact_revision == 0
            && self.revision != 0
    }
}

/// One watch stream, from creation to its end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// Member watched.
    pub member: usize,
    /// What was asked.
    pub spec: WatchSpec,
    /// Everything received, in order.
    pub responses: Vec<WatchResponse>,
    /// How the watch ended (run over, canceled, stream error …).
    pub ended: String,
}
