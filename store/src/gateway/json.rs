//! The gateway's JSON encoding: proto3 JSON as etcd's grpc-gateway writes it (original proto
//! field names, base64 bytes, 64-bit integers as strings, enum names, zero values omitted),
//! driven by the descriptors of our own protos.

use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin")).as_ref())
        .expect("descriptors compiled by build.rs decode")
});

/// A request body that is not the JSON of the expected message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadJson(pub String);

/// Decode the JSON body of `etcdserverpb.<name>` into its prost type (empty body = defaults).
pub fn decode<T: Message + Default>(name: &str, body: &[u8]) -> Result<T, BadJson> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let msg = decode_value(name, &mut de)?;
    de.end()
        .map_err(|e| BadJson(format!("invalid JSON: {e}")))?;
    Ok(msg)
}

/// Decode one JSON value of `etcdserverpb.<name>` from a deserializer.
pub fn decode_value<'de, T, D>(name: &str, de: D) -> Result<T, BadJson>
where
    T: Message + Default,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let desc = POOL
        .get_message_by_name(&format!("etcdserverpb.{name}"))
        .ok_or_else(|| BadJson(format!("unknown message {name}")))?;
    let opts = DeserializeOptions::new().deny_unknown_fields(false);
    let dm = DynamicMessage::deserialize_with_options(desc, de, &opts)
        .map_err(|e| BadJson(format!("invalid {name} JSON: {e}")))?;
    dm.transcode_to::<T>()
        .map_err(|e| BadJson(format!("invalid {name}: {e}")))
}

/// Encode a prost message of type `etcdserverpb.<name>` as gateway JSON.
pub fn encode<T: Message>(name: &str, msg: &T) -> serde_json::Value {
    let desc = POOL
        .get_message_by_name(&format!("etcdserverpb.{name}"))
        .expect("response message is in the descriptor pool");
    let mut dm = DynamicMessage::new(desc);
    dm.transcode_from(msg)
        .expect("a message transcodes into its own descriptor");
    let opts = SerializeOptions::new()
        .stringify_64_bit_integers(true)
        .use_proto_field_name(true)
        .skip_default_fields(true);
    dm.serialize_with_options(serde_json::value::Serializer, &opts)
        .expect("serializing to a JSON value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{KeyValue, PutRequest, RangeResponse, ResponseHeader};

    #[test]
    fn gateway_encoding() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let v = encode("RangeResponse", &r);
        assert_eq!(
            v,
            serde_json::json!({
                "header": {"cluster_id": "1", "member_id": "2", "revision": "3", "raft_term": "4"},
                "kvs": [{"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1", "value": "YmFy"}],
                "count": "1"
            })
        );
        let p: PutRequest = decode(
            "PutRequest",
            br#"{"key":"Zm9v","value":"YmFy","prevKv":true}"#,
        )
        .unwrap();
        assert_eq!(p.key, b"foo");
        assert!(p.prev_kv);
        assert!(decode::<PutRequest>("PutRequest", b"{not json").is_err());
        assert!(decode::<PutRequest>("PutRequest", br#"{"key": 5}"#).is_err());
    }
}
