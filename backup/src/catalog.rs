//! The catalog and what can be restored from it.
//!
//! Writers commit by updating `catalog.json` with a PUT conditional on the ETag they last
//! read (If-Match), so two writers can never both commit from the same state. A writer starts
//! by recording a new generation and the revision it will write from; from then on an older
//! writer's next commit fails, and whatever it uploads after that is ignored by the rules in
//! `Catalog::delta_is_valid` (it names revisions at or past the newer generation's start).
//! That is the fencing: an operator that lost leadership cannot make anything part of a
//! backup, even with an upload in flight.
//!
//! The deltas form one sequence of revision ranges, shared by every full snapshot: a full at
//! revision F is restored with the deltas that continue from F+1 without a hole.

use serde::{Deserialize, Serialize};

pub const CATALOG: &str = "catalog.json";
pub const FULL_DIR: &str = "full/";
pub const DELTA_DIR: &str = "delta/";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Ascending by generation.
    #[serde(default)]
    pub generations: Vec<Generation>,
    /// Ascending by revision.
    #[serde(default)]
    pub fulls: Vec<Full>,
    /// The newest revision committed (by a delta, or by a full past every delta).
    #[serde(default)]
    pub head: i64,
    /// When the head was committed (ms since the epoch).
    #[serde(default)]
    pub head_unix_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    pub generation: u64,
    /// The first revision this generation's deltas may cover.
    pub from_revision: i64,
    pub unix_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Full {
    /// The snapshot's own revision (read from the snapshot as it streamed).
    pub revision: i64,
    /// Object name under the prefix.
    pub key: String,
    /// SHA-256 of the stored (compressed) object, hex.
    pub sha256: String,
    /// Size of the snapshot itself and of the stored object.
    pub bytes: u64,
    pub stored_bytes: u64,
    /// When the snapshot was taken (ms since the epoch).
    pub unix_ms: i64,
    pub generation: u64,
    /// Taken where the deltas could not continue (the first one, or after the source was
    /// compacted past them): the revisions between the deltas before it and it are not in
    /// the backup, a hole that a restore into it reports rather than restores around.
    #[serde(default)]
    pub restart: bool,
}

/// A delta object, as its name tells.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeltaName {
    pub from: i64,
    pub to: i64,
    pub generation: u64,
}

impl DeltaName {
    pub fn key(&self) -> String {
        format!("{DELTA_DIR}{:020}-{:020}-g{:010}.cdl", self.from, self.to, self.generation)
    }

    pub fn parse(key: &str) -> Option<DeltaName> {
        let rest = key.strip_prefix(DELTA_DIR)?.strip_suffix(".cdl")?;
        let mut parts = rest.split('-');
        let from = parts.next()?.parse().ok()?;
        let to = parts.next()?.parse().ok()?;
        let generation = parts.next()?.strip_prefix('g')?.parse().ok()?;
        (parts.next().is_none() && from <= to).then_some(DeltaName { from, to, generation })
    }
}

pub fn full_key(unix_ms: i64, generation: u64) -> String {
    format!("{FULL_DIR}{unix_ms:016}-g{generation:010}.snap.zst")
}

/// The generation a full data object was written by (to clean up unreferenced ones).
pub fn full_key_generation(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(FULL_DIR)?.strip_suffix(".snap.zst")?;
    rest.split_once("-g")?.1.parse().ok()
}

/// How far a restore goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Latest,
    Revision(i64),
    /// Everything observed at or before this time (ms since the epoch).
    Time(i64),
}

/// What a restore downloads: one full and the deltas that continue it, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub full: Full,
    pub deltas: Vec<DeltaName>,
    /// The newest revision the plan can reach (before a time target cuts it).
    pub reaches: i64,
    /// The catalog's head: a time target not reached by `reaches` falls in a hole.
    pub head: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no full snapshot in the backup")]
    Empty,
    #[error("no full snapshot at or before {0}: the oldest is at revision {1}")]
    TooOld(String, i64),
    #[error("revision {want} is not backed up: from the full snapshot at revision {full}, the deltas reach revision {reaches}")]
    NotReached { want: i64, full: i64, reaches: i64 },
    #[error("the backup is damaged: no delta object holds revision {revision} (expected delta/{revision:020}-…), though the catalog's head is revision {head}")]
    Missing { revision: i64, head: i64 },
}

impl Catalog {
    pub fn generation(&self) -> u64 {
        self.generations.last().map_or(0, |g| g.generation)
    }

    /// Whether a delta object is part of the backup: committed (not past the head) and
    /// written by its generation before a newer one started.
    pub fn delta_is_valid(&self, d: &DeltaName) -> bool {
        if d.to > self.head {
            return false;
        }
        let Some(i) = self.generations.iter().position(|g| g.generation == d.generation) else {
            return false;
        };
        let starts_after = self.generations[i].from_revision <= d.from;
        let ends_before_next = self.generations.get(i + 1).is_none_or(|next| d.to < next.from_revision);
        starts_after && ends_before_next
    }

    /// The full a restore to `target` starts from and the deltas it replays.
    pub fn plan(&self, deltas: &[DeltaName], target: Target) -> Result<Plan, PlanError> {
        let oldest = self.fulls.first().ok_or(PlanError::Empty)?;
        let full = match target {
            Target::Latest => self.fulls.last(),
            Target::Revision(r) => self.fulls.iter().rev().find(|f| f.revision <= r),
            Target::Time(ms) => self.fulls.iter().rev().find(|f| f.unix_ms <= ms),
        };
        let full = full.ok_or_else(|| {
            let what = match target {
                Target::Revision(r) => format!("revision {r}"),
                Target::Time(ms) => format!("time {}", crate::time::format_ms(ms)),
                Target::Latest => "the latest".into(),
            };
            PlanError::TooOld(what, oldest.revision)
        })?;
        let mut valid: Vec<&DeltaName> = deltas.iter().filter(|d| self.delta_is_valid(d)).collect();
        valid.sort();
        let want = match target {
            Target::Revision(r) => r,
            _ => self.head.max(full.revision),
        };
        let mut chain = Vec::new();
        let mut next = full.revision + 1;
        while next <= want {
            // Of the deltas holding `next`, the one reaching furthest.
            let best = valid.iter().filter(|d| d.from <= next && next <= d.to).max_by_key(|d| d.to);
            let Some(d) = best else { break };
            chain.push((*d).clone());
            next = d.to + 1;
        }
        let reaches = next - 1;
        if reaches < want {
            // A hole the writer left on purpose, or revisions not backed up yet; otherwise an
            // object that should be there is not.
            let hole = self.fulls.iter().any(|f| f.restart && f.revision > reaches);
            match target {
                Target::Revision(r) if hole || r > self.head => {
                    return Err(PlanError::NotReached { want: r, full: full.revision, reaches })
                }
                Target::Time(_) if hole => {}
                _ => return Err(PlanError::Missing { revision: reaches + 1, head: self.head }),
            }
        }
        Ok(Plan { full: full.clone(), deltas: chain, reaches, head: self.head })
    }

    /// Applies a retention policy: keeps the newest `keep` fulls younger than `max_age_ms`
    /// (always the newest one). Returns the object names no retained restore needs: the
    /// dropped fulls, the deltas that end at or before the oldest retained full, and
    /// whatever older generations left uncommitted. `listed` is every object under the prefix.
    pub fn retain(&mut self, keep: usize, max_age_ms: Option<i64>, now_ms: i64, listed: &[String]) -> Vec<String> {
        let newest = self.fulls.len().saturating_sub(1);
        let kept: Vec<Full> = self
            .fulls
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                *i == newest || (*i + keep.max(1) > newest && max_age_ms.is_none_or(|age| now_ms - f.unix_ms <= age))
            })
            .map(|(_, f)| f.clone())
            .collect();
        self.fulls = kept;
        let Some(oldest) = self.fulls.first().map(|f| f.revision) else { return Vec::new() };
        let current = self.generation();
        let mut gone = Vec::new();
        for key in listed {
            if let Some(d) = DeltaName::parse(key) {
                let committed = self.delta_is_valid(&d);
                if (committed && d.to <= oldest) || (!committed && d.generation < current) {
                    gone.push(key.clone());
                }
            } else if let Some(g) = full_key_generation(key) {
                let referenced = self.fulls.iter().any(|f| f.key == *key);
                // An unreferenced full of the current generation may be an upload about to
                // commit, unless a later full of that generation committed already.
                let superseded = self.fulls.iter().any(|f| f.generation == g && f.key > *key);
                if !referenced && (g < current || superseded) {
                    gone.push(key.clone());
                }
            }
        }
        gone
    }
}
