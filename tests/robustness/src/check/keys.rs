//! Keys and byte strings: etcd's key ranges (`[key, range_end)` with its two special ends)
//! and the JSON form of keys and values in a dumped history.

/// Whether `k` lies in etcd's range `[key, range_end)`: an empty `range_end` means `key` alone,
/// `range_end == [0]` means every key from `key` on.
pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

/// Whether two etcd ranges share a key.
pub fn ranges_overlap(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> bool {
    let end = |(key, range_end): (&[u8], &[u8])| -> Option<Vec<u8>> {
        match range_end {
            [] => Some([key, &[0][..]].concat()),
            [0] => None,
            end => Some(end.to_vec()),
        }
    };
    let below = |x: &[u8], end: &Option<Vec<u8>>| end.as_ref().is_none_or(|e| x < e.as_slice());
    below(a.0, &end(b)) && below(b.0, &end(a))
}

/// Bytes as a string when they are UTF-8, else as a list of numbers; both read back.
pub(crate) mod text {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_seq(bytes),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Bytes)
    }
}
