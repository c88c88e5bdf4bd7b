//! One WAL record: its layout on disk, encoding into a write buffer, and checked decoding.
//!
//! A record is a 32-byte header, the payload, and zero padding to a multiple of 8 bytes, so
//! every record starts at an 8-byte aligned offset of its segment. Integers are little endian.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | crc32c of everything from offset 4 to the end of the payload |
//! | 4 | 4 | payload length |
//! | 8 | 8 | sequence number: one more than the previous record's, across all segments |
//! | 16 | 8 | log index (entries, truncation and purge markers; 0 for the vote and committed) |
//! | 24 | 1 | kind ([`Kind`]) |
//! | 25 | 3 | zero |
//! | 28 | 4 | bytes back to the first record of the same `write` (0 for the first one) |
//!
//! The checksum covers the header too, so a record read back is either what was written or
//! reported damaged. The last field tells replay which `write` a record came from: after a
//! damaged record, a valid record of the *same* write is debris of an interrupted write, while
//! a valid record of a *later* write proves that the damaged one had been made durable.
//!
//! A header of 32 zero bytes is never written (every kind is non-zero): it is the preallocated,
//! never written part of a segment.

/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 32;
/// Records start at multiples of this.
pub(crate) const ALIGN: usize = 8;
/// The largest payload one record may carry (1 GiB).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// What a record is: the byte stored in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A log entry at `index`.
    Entry = 1,
    /// The vote; the latest one wins.
    Vote = 2,
    /// The committed index; the latest one wins.
    Committed = 3,
    /// Marker: the entries at and after `index` are removed.
    TruncateFrom = 4,
    /// Marker: the entries up to and including `index` are removed.
    PurgeUpto = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entry,
            2 => Kind::Vote,
            3 => Kind::Committed,
            4 => Kind::TruncateFrom,
            5 => Kind::PurgeUpto,
            _ => return None,
        })
    }
}

/// A record to append. Payloads are opaque to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A log entry; its index must be one more than the last entry's.
    Entry {
        /// The log index.
        index: u64,
        /// The encoded entry.
        payload: &'a [u8],
    },
    /// The vote; replaces the previous one.
    Vote(&'a [u8]),
    /// The committed index; replaces the previous one.
    Committed(&'a [u8]),
}

/// A record as the write path handles it: callers' records and the WAL's own markers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw<'a> {
    pub kind: Kind,
    pub index: u64,
    pub payload: &'a [u8],
}

impl<'a> From<&Record<'a>> for Raw<'a> {
    fn from(r: &Record<'a>) -> Self {
        match *r {
            Record::Entry { index, payload } => Raw {
                kind: Kind::Entry,
                index,
                payload,
            },
            Record::Vote(payload) => Raw {
                kind: Kind::Vote,
                index: 0,
                payload,
            },
            Record::Committed(payload) => Raw {
                kind: Kind::Committed,
                index: 0,
                payload,
            },
        }
    }
}

/// Bytes a record with this payload length takes on disk, padding included.
pub(crate) fn encoded_len(payload_len: usize) -> usize {
    (RECORD_HEADER + payload_len).next_multiple_of(ALIGN)
}

/// Append the encoding of `raw` to `buf`. `back` is the record's distance from the start of
/// the write it is part of; `raw.payload` must not exceed [`MAX_PAYLOAD`].
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, raw: &Raw<'_>, back: u32) {
    debug_assert!(raw.payload.len() <= MAX_PAYLOAD);
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(raw.payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&raw.index.to_le_bytes());
    buf.push(raw.kind as u8);
    buf.extend_from_slice(&[0; 3]);
    buf.extend_from_slice(&back.to_le_bytes());
    buf.extend_from_slice(raw.payload);
    let crc = crc32c::crc32c(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    buf.resize(start + encoded_len(raw.payload.len()), 0);
}

/// A record header that was read back and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub seq: u64,
    pub index: u64,
    pub kind: Kind,
    pub back: u32,
}

impl Header {
    /// Bytes the record takes on disk.
    pub fn size(&self) -> usize {
        encoded_len(self.len as usize)
    }

    /// Where the payload of the record at `at` is.
    pub fn payload(&self, at: usize) -> std::ops::Range<usize> {
        at + RECORD_HEADER..at + RECORD_HEADER + self.len as usize
    }
}

/// What is found at an offset of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A record whose checksum matches.
    Valid(Header),
    /// Zeroes: nothing was ever written here (or the segment ends).
    Blank,
    /// Bytes that are not a valid record, and why.
    Damaged(String),
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode and check the record at `at` of `buf` (which ends where the segment ends).
pub(crate) fn decode(buf: &[u8], at: usize) -> Decoded {
    let rest = buf.get(at..).unwrap_or_default();
    if rest.len() < RECORD_HEADER {
        return if rest.iter().all(|b| *b == 0) {
            Decoded::Blank
        } else {
            Decoded::Damaged(format!(
                "a record header cut short ({} bytes before the end of the segment)",
                rest.len()
            ))
        };
    }
    let head = &rest[..RECORD_HEADER];
    if head.iter().all(|b| *b == 0) {
        return Decoded::Blank;
    }
    let len = le_u32(head, 4);
    let end = RECORD_HEADER + len as usize;
    if len as usize > MAX_PAYLOAD || end > rest.len() {
        return Decoded::Damaged(format!(
            "a record of {len} payload bytes that runs past the end of the segment"
        ));
    }
    if crc32c::crc32c(&rest[4..end]) != le_u32(head, 0) {
        return Decoded::Damaged("a record whose checksum does not match".into());
    }
    let Some(kind) = Kind::from_byte(head[24]) else {
        return Decoded::Damaged(format!("a record of unknown kind {}", head[24]));
    };
    if head[25..28] != [0; 3] {
        return Decoded::Damaged("a record with non-zero reserved bytes".into());
    }
    Decoded::Valid(Header {
        len,
        seq: le_u64(head, 8),
        index: le_u64(head, 16),
        kind,
        back: le_u32(head, 28),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: u64, index: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let raw = Raw {
            kind: Kind::Entry,
            index,
            payload,
        };
        encode(&mut buf, seq, &raw, 0);
        buf
    }

    #[test]
    fn a_record_round_trips_and_is_padded_to_the_alignment() {
        for len in [0, 1, 7, 8, 9, 100] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let buf = one(7, 42, &payload);
            assert_eq!(buf.len(), encoded_len(len));
            assert_eq!(buf.len() % ALIGN, 0);
            let Decoded::Valid(h) = decode(&buf, 0) else {
                panic!("record of {len} bytes not decoded")
            };
            assert_eq!((h.seq, h.index, h.kind, h.back), (7, 42, Kind::Entry, 0));
            assert_eq!(&buf[h.payload(0)], payload.as_slice());
            assert_eq!(h.size(), buf.len());
        }
    }

    #[test]
    fn every_flipped_bit_of_a_record_is_detected() {
        let buf = one(3, 9, b"some payload");
        let used = RECORD_HEADER + b"some payload".len();
        for byte in 0..used {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(decode(&bad, 0), Decoded::Damaged(_)),
                    "flip of bit {bit} of byte {byte} not detected"
                );
            }
        }
    }

    #[test]
    fn zeroes_are_blank_and_a_cut_record_is_damaged() {
        assert_eq!(decode(&[0; 64], 0), Decoded::Blank);
        assert_eq!(decode(&[0; 10], 0), Decoded::Blank);
        assert_eq!(decode(&[], 0), Decoded::Blank);
        let buf = one(1, 1, &[1; 40]);
        assert!(matches!(decode(&buf[..50], 0), Decoded::Damaged(_)));
        assert!(matches!(decode(&buf[..20], 0), Decoded::Damaged(_)));
        // The padding is not part of the record.
        let mut padded = buf.clone();
        padded.truncate(RECORD_HEADER + 40);
        assert!(matches!(decode(&padded, 0), Decoded::Valid(_)));
    }

    #[test]
    fn records_of_every_kind_decode() {
        for (kind, byte) in [
            (Kind::Entry, 1),
            (Kind::Vote, 2),
            (Kind::Committed, 3),
            (Kind::TruncateFrom, 4),
            (Kind::PurgeUpto, 5),
        ] {
            assert_eq!(Kind::from_byte(byte), Some(kind));
            let mut buf = Vec::new();
            let raw = Raw {
                kind,
                index: 5,
                payload: b"x",
            };
            encode(&mut buf, 1, &raw, 24);
            let Decoded::Valid(h) = decode(&buf, 0) else {
                panic!("{kind:?} not decoded")
            };
            assert_eq!((h.kind, h.back), (kind, 24));
        }
        assert_eq!(Kind::from_byte(0), None);
        assert_eq!(Kind::from_byte(6), None);
    }
}
