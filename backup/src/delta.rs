//! A delta object: `MAGIC`, the SHA-256 of what follows, then a zstd-compressed
//! `DeltaRecord`. The checksum travels inside the object, so a copy of the bucket made by any
//! tool can still be checked.

use crate::catalog::DeltaName;
use crate::BackupError;
use cairn_api::proto::cairnpb::DeltaRecord;
use prost::Message;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"CAIRNDL1";
const ZSTD_LEVEL: i32 = 3;

pub fn encode(rec: &DeltaRecord) -> Vec<u8> {
    let packed = zstd::bulk::compress(&rec.encode_to_vec(), ZSTD_LEVEL).expect("zstd compresses into memory");
    let mut out = Vec::with_capacity(MAGIC.len() + 32 + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&Sha256::digest(&packed));
    out.extend_from_slice(&packed);
    out
}

/// Decodes the object stored under `name`, checking its checksum and that it holds what its
/// name says.
pub fn decode(name: &DeltaName, bytes: &[u8]) -> Result<DeltaRecord, BackupError> {
    let key = name.key();
    let bad = |why: String| BackupError::Object(format!("delta {key}: {why}"));
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a Cairn delta object".into()));
    }
    let (sum, packed) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(packed).as_slice() != sum {
        return Err(bad("checksum mismatch (the object is corrupted)".into()));
    }
    let raw = zstd::stream::decode_all(packed).map_err(|e| bad(format!("decompressing: {e}")))?;
    let rec = DeltaRecord::decode(&raw[..]).map_err(|e| bad(format!("decoding: {e}")))?;
    let first = rec.revisions.first().map(|r| r.revision);
    let last = rec.revisions.last().map(|r| r.revision);
    if rec.from_revision != name.from
        || rec.to_revision != name.to
        || rec.generation != name.generation
        || first != Some(name.from)
        || last != Some(name.to)
    {
        return Err(bad(format!("holds revisions {first:?}..={last:?}, not what its name says")));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::proto::cairnpb::DeltaRevision;

    fn sample() -> (DeltaName, DeltaRecord) {
        let name = DeltaName { from: 5, to: 6, generation: 2 };
        let revisions =
            (5..=6).map(|r| DeltaRevision { revision: r, observed_unix_ms: 1000 + r, events: vec![] }).collect();
        (name, DeltaRecord { from_revision: 5, to_revision: 6, generation: 2, revisions })
    }

    #[test]
    fn round_trips() {
        let (name, rec) = sample();
        assert_eq!(decode(&name, &encode(&rec)).unwrap(), rec);
    }

    #[test]
    fn a_flipped_byte_is_named() {
        let (name, rec) = sample();
        let mut bytes = encode(&rec);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = decode(&name, &bytes).unwrap_err().to_string();
        assert!(err.contains(&name.key()) && err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_record_under_another_name_is_refused() {
        let (_, rec) = sample();
        let other = DeltaName { from: 5, to: 7, generation: 2 };
        let err = decode(&other, &encode(&rec)).unwrap_err().to_string();
        assert!(err.contains("not what its name says"), "{err}");
    }
}
