//! `cairn snapshot status FILE`: what `etcdutl snapshot status` tells of a snapshot — a hash
//! of its content, its revision, how many keys it holds, its size — in etcdctl's output
//! formats.

use anyhow::Context;
use cairn_api::proto::cairnpb::TombstoneRecord;
use cairn_api::proto::mvccpb::KeyValue;
use cairn_node::storage::backend::META_REVISION;
use cairn_node::storage::mvcc::{tombstones_main, Revision};
use prost::Message;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

pub struct Status {
    /// CRC-32 of the image (what the SHA-256 covers, padding included).
    pub hash: u32,
    pub revision: i64,
    /// Keys that exist at the snapshot's revision.
    pub total_keys: usize,
    pub total_size: u64,
}

pub fn read(path: &Path, skip_hash_check: bool) -> anyhow::Result<Status> {
    super::verify(path, skip_hash_check)?;
    let total_size = std::fs::metadata(path)?.len();
    let mut revision = 0;
    // Each key's latest change: (main, sub, is a put).
    let mut latest: HashMap<Vec<u8>, (i64, i64, bool)> = HashMap::new();
    let mut note = |key: Vec<u8>, main: i64, sub: i64, put: bool| {
        let e = latest.entry(key).or_insert((main, sub, put));
        if (main, sub) > (e.0, e.1) {
            *e = (main, sub, put);
        }
    };
    cairn_node::storage::image::read(path, |k, v| {
        let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        if k == META_REVISION {
            revision = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| bad("bad revision".into()))?) as i64;
        } else if let Some(rev) = Revision::from_key(&k) {
            let kv = KeyValue::decode(&v[..]).map_err(|e| bad(e.to_string()))?;
            note(kv.key, rev.main, rev.sub, true);
        } else if let Some(main) = tombstones_main(&k) {
            let rec = TombstoneRecord::decode(&v[..]).map_err(|e| bad(e.to_string()))?;
            for (sub, key) in rec.subs.into_iter().zip(rec.keys) {
                note(key, main, sub, false);
            }
        }
        Ok(())
    })
    .with_context(|| format!("{}: not a Cairn snapshot", path.display()))?;
    let mut crc = crc32fast::Hasher::new();
    let mut f = std::fs::File::open(path)?.take(total_size - super::SHA_LEN);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
    }
    let total_keys = latest.values().filter(|(.., put)| *put).count();
    Ok(Status { hash: crc.finalize(), revision, total_keys, total_size })
}

/// The status in etcdctl's formats: simple (its default), table or json.
pub fn render(s: &Status, format: &str) -> anyhow::Result<String> {
    let size = super::human_bytes(s.total_size);
    let cells = [format!("{:x}", s.hash), s.revision.to_string(), s.total_keys.to_string(), size];
    Ok(match format {
        "simple" => cells.join(", ") + "\n",
        "json" => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        ),
        "table" => {
            let heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
            let widths: Vec<usize> = heads.iter().zip(&cells).map(|(h, c)| h.len().max(c.len()) + 2).collect();
            let rule = widths.iter().map(|w| format!("+{}", "-".repeat(*w))).collect::<String>() + "+\n";
            let head = heads.iter().zip(&widths).map(|(h, w)| format!("|{h:^w$}")).collect::<String>() + "|\n";
            let row =
                cells.iter().zip(&widths).map(|(c, w)| format!("|{:>w$}", format!("{c} "))).collect::<String>() + "|\n";
            format!("{rule}{head}{rule}{row}{rule}")
        }
        other => anyhow::bail!("unsupported output format {other:?} (simple, table or json)"),
    })
}
