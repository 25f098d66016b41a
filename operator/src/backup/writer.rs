//! The backup writer of one cluster (DESIGN §4): full snapshots on a cron schedule, and in
//! between, the watch's changes flushed every delta interval as one delta object each.
//!
//! A writer works in sessions. A session first records a new generation in the catalog,
//! starting where the catalog's head ends (so after a crash nothing is skipped, and nothing an
//! older writer left uncommitted is ever counted, see `cairn_backup::catalog`); then
//! takes a full snapshot if the catalog has none; then follows the watch from the head. Any
//! failure ends the session and a new one starts after a backoff: the catalog, not memory,
//! says where to resume. A compacted watch start takes a new full snapshot: the revisions in
//! between cannot be read any more, and a restore into them fails with a message rather than
//! restoring something silently incomplete.

use super::cron::Schedule;
use super::error::{Result, WriterError};
use super::watch::{self, Item};
use cairn_api::proto::cairnpb::{DeltaRecord, DeltaRevision};
use cairn_api::proto::mvccpb::{event::EventType, Event, KeyValue};
use cairn_backup::catalog::{full_key, Catalog, DeltaName, Full, Generation, CATALOG};
use cairn_backup::{delta, full, s3::Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The members to read from (voters' client addresses), asked anew at each connection.
pub use super::watch::Endpoints;

/// A delta is flushed early once its changes reach this size.
const MAX_PENDING_BYTES: usize = 64 << 20;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

use cairn_backup::time::now_ms;

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub schedule: Schedule,
    pub delta_interval: Duration,
    /// Full snapshots kept (with what their restores need).
    pub keep: usize,
    pub max_age: Option<Duration>,
}

/// What the writer reports: the reconciler turns it into status, conditions, Events and metrics.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub generation: u64,
    pub full_revision: Option<i64>,
    pub full_unix_ms: Option<i64>,
    /// The newest revision in S3 (the catalog's head).
    pub head: Option<i64>,
    pub head_unix_ms: Option<i64>,
    /// The last time everything the watch had delivered was in S3.
    pub current_unix_ms: Option<i64>,
    /// Of the newest delta: from its oldest change's arrival to its commit.
    pub lag_ms: Option<i64>,
    pub bytes_uploaded: u64,
    pub fulls: u64,
    pub deltas: u64,
    pub last_error: Option<String>,
    /// Things worth an Event, taken by the reconciler: (reason, note).
    pub notes: Vec<(&'static str, String)>,
}

pub struct Writer {
    pub store: Store,
    pub endpoints: Endpoints,
    pub cfg: WriterConfig,
    pub progress: Arc<Mutex<Progress>>,
}

/// The catalog as last read or written, and its ETag: every change is a conditional PUT, so
/// a writer whose generation was superseded fails here before anything it wrote counts.
struct Committer<'a> {
    store: &'a Store,
    catalog: Catalog,
    etag: Option<String>,
}

impl<'a> Committer<'a> {
    async fn load(store: &'a Store) -> Result<Committer<'a>> {
        Ok(match store.get(CATALOG).await? {
            Some((bytes, etag)) => Committer { store, catalog: serde_json::from_slice(&bytes)?, etag: Some(etag) },
            None => Committer { store, catalog: Catalog::default(), etag: None },
        })
    }

    async fn commit<T>(&mut self, change: impl FnOnce(&mut Catalog) -> T) -> Result<T> {
        let mut next = self.catalog.clone();
        let out = change(&mut next);
        let etag = self.store.put_if(CATALOG, serde_json::to_vec_pretty(&next)?, self.etag.as_deref()).await?;
        self.catalog = next;
        self.etag = Some(etag);
        Ok(out)
    }
}

impl Writer {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs sessions until dropped (the runner aborts it when the spec changes or the
    /// cluster goes).
    pub async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = self.session().await {
                tracing::warn!("backup: {e}");
                let mut p = self.progress();
                p.last_error = Some(e.to_string());
                p.notes.push(("BackupFailed", e.to_string()));
            }
            if started.elapsed() > MAX_BACKOFF * 2 {
                backoff = Duration::from_secs(1);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(&self) -> Result<()> {
        let mut cat = Committer::load(&self.store).await?;
        self.check_lineage(&cat.catalog).await?;
        let generation = cat.catalog.generation() + 1;
        let from = cat.catalog.head + 1;
        cat.commit(|c| c.generations.push(Generation { generation, from_revision: from, unix_ms: now_ms() })).await?;
        self.report(&cat.catalog, |p| p.generation = generation);
        self.abort_fenced_uploads(generation).await;
        tracing::info!(generation, from, "backup: writing");
        let mut start = (!cat.catalog.fulls.is_empty()).then_some(from);
        loop {
            let at = match start {
                Some(at) => at,
                None => {
                    let f = self.full(&mut cat, generation, true).await?;
                    f.revision + 1
                }
            };
            let compacted = self.follow(&mut cat, generation, at).await?;
            let note =
                format!("the watch from revision {at} was compacted (at revision {compacted}): taking a full snapshot");
            tracing::warn!("backup: {note}");
            self.progress().notes.push(("BackupCompacted", note));
            start = None;
        }
    }

    /// A cluster behind the catalog's head is not the one these backups are of (a cluster
    /// restored to an earlier revision, pointed at its source's prefix): its revisions would
    /// mean other changes than the ones backed up under the same numbers.
    async fn check_lineage(&self, c: &Catalog) -> Result<()> {
        if c.head == 0 {
            return Ok(());
        }
        // The highest any member reports: a follower that just restarted may lag a little.
        let mut newest = None;
        let mut last = WriterError::Failed("no members to ask for their revision".into());
        for ep in (self.endpoints)() {
            match current_revision(&ep).await {
                Ok(rev) => newest = newest.max(Some(rev)),
                Err(e) => last = e,
            }
        }
        let rev = newest.ok_or(last)?;
        if rev < c.head {
            return Err(WriterError::Failed(format!(
                "the cluster is at revision {rev}, behind revision {} backed up under {}: it is not the cluster these backups are of (back a restored cluster up under a new prefix)",
                c.head,
                self.store.url("")
            )));
        }
        Ok(())
    }

    /// Uploads of full snapshots that fenced generations left unfinished can never complete:
    /// their parts go back (best effort: a failure here costs only storage).
    async fn abort_fenced_uploads(&self, generation: u64) {
        let uploads = match self.store.uploads(cairn_backup::catalog::FULL_DIR).await {
            Ok(u) => u,
            Err(e) => return tracing::warn!("backup: listing unfinished uploads: {e:#}"),
        };
        for (name, id) in uploads {
            if cairn_backup::catalog::full_key_generation(&name).is_some_and(|g| g < generation) {
                if let Err(e) = self.store.abort_upload(&name, &id).await {
                    tracing::warn!("backup: {e}");
                }
            }
        }
    }

    fn report(&self, c: &Catalog, more: impl FnOnce(&mut Progress)) {
        let mut p = self.progress();
        if let Some(f) = c.fulls.last() {
            p.full_revision = Some(f.revision);
            p.full_unix_ms = Some(f.unix_ms);
        }
        if c.head > 0 {
            p.head = Some(c.head);
            p.head_unix_ms = Some(c.head_unix_ms);
        }
        more(&mut p);
    }

    /// Takes a full snapshot and commits it. `restart`: it is where the deltas start (first
    /// one, or after a compaction), so the head moves up to it.
    async fn full(&self, cat: &mut Committer<'_>, generation: u64, restart: bool) -> Result<Full> {
        let f = Full { restart, ..upload_full(&self.store, &self.endpoints, generation).await? };
        self.commit_full(cat, f).await
    }

    async fn commit_full(&self, cat: &mut Committer<'_>, f: Full) -> Result<Full> {
        let entry = f.clone();
        let (keep, max_age) = (self.cfg.keep, self.cfg.max_age.map(|d| d.as_millis() as i64));
        let listed = self.store.list("").await?;
        let gone = cat
            .commit(|c| {
                c.fulls.push(entry);
                if f.restart && c.head < f.revision {
                    c.head = f.revision;
                    c.head_unix_ms = f.unix_ms;
                }
                c.retain(keep, max_age, now_ms(), &listed)
            })
            .await?;
        for key in &gone {
            self.store.delete(key).await?;
        }
        tracing::info!(
            revision = f.revision,
            bytes = f.bytes,
            stored = f.stored_bytes,
            removed = gone.len(),
            "backup: full snapshot"
        );
        self.report(&cat.catalog, |p| {
            p.fulls += 1;
            p.bytes_uploaded += f.stored_bytes;
            p.notes.push((
                "FullBackup",
                format!(
                    "full snapshot at revision {} ({} bytes stored, {} old objects removed)",
                    f.revision,
                    f.stored_bytes,
                    gone.len()
                ),
            ));
        });
        Ok(f)
    }

    /// Follows the watch from `start`, flushing deltas, and taking full snapshots when the
    /// schedule says (in the background: deltas keep flowing meanwhile). Returns only when
    /// the watch's start was compacted, with the compaction revision.
    async fn follow(&self, cat: &mut Committer<'_>, generation: u64, start: i64) -> Result<i64> {
        let (tx, mut rx) = mpsc::channel(64);
        let watcher = tokio::spawn(watch::follow(self.endpoints.clone(), start, tx));
        let _stop_watch = AbortOnDrop(watcher);
        let mut pending = Pending::new(start - 1);
        let mut tick = tokio::time::interval(self.cfg.delta_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_full = self.next_full();
        // A full snapshot in flight; aborted with the session that started it.
        let mut taking: Option<AbortOnDrop<Result<Full>>> = None;
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(Item::Events(events, at)) => {
                        pending.add(events, at)?;
                        if pending.bytes >= MAX_PENDING_BYTES {
                            self.flush(cat, generation, &mut pending).await?;
                        }
                    }
                    Some(Item::Compacted(rev)) => {
                        self.flush(cat, generation, &mut pending).await?;
                        return Ok(rev);
                    }
                    None => return Err(WriterError::Failed("the backup watch stopped".into())),
                },
                _ = tick.tick() => self.flush(cat, generation, &mut pending).await?,
                // (A disabled branch's future is made but never polled.)
                _ = sleep_until_ms(next_full.unwrap_or_default()), if taking.is_none() && next_full.is_some() => {
                    let (store, endpoints) = (self.store.clone(), self.endpoints.clone());
                    taking = Some(AbortOnDrop(tokio::spawn(async move { upload_full(&store, &endpoints, generation).await })));
                    next_full = self.next_full();
                }
                done = async { (&mut taking.as_mut().expect("guarded").0).await }, if taking.is_some() => {
                    taking = None;
                    let full = done.map_err(|e| WriterError::Failed(format!("the full snapshot's task: {e}")))??;
                    // What arrived meanwhile first: retention then sees those deltas committed.
                    self.flush(cat, generation, &mut pending).await?;
                    self.commit_full(cat, full).await?;
                }
            }
        }
    }

    fn next_full(&self) -> Option<i64> {
        self.cfg.schedule.next_after(k8s_openapi::jiff::Timestamp::now()).map(|t| t.as_millisecond())
    }

    async fn flush(&self, cat: &mut Committer<'_>, generation: u64, pending: &mut Pending) -> Result<()> {
        let Some(rec) = pending.record(generation) else {
            self.progress().current_unix_ms = Some(now_ms());
            return Ok(());
        };
        if rec.from_revision > cat.catalog.head + 1 {
            return Err(WriterError::Failed(format!(
                "a delta from revision {} would leave a hole after revision {}",
                rec.from_revision, cat.catalog.head
            )));
        }
        let name = DeltaName { from: rec.from_revision, to: rec.to_revision, generation };
        let bytes = delta::encode(&rec);
        let size = bytes.len() as u64;
        self.store.put(&name.key(), bytes).await?;
        let now = now_ms();
        cat.commit(|c| {
            c.head = c.head.max(name.to);
            c.head_unix_ms = now;
        })
        .await?;
        let oldest = pending.oldest_ms;
        pending.clear();
        self.report(&cat.catalog, |p| {
            p.deltas += 1;
            p.bytes_uploaded += size;
            p.lag_ms = Some(now - oldest);
            p.current_unix_ms = Some(now);
            p.last_error = None;
        });
        Ok(())
    }
}

/// Changes received and not yet in S3, grouped by revision.
struct Pending {
    revisions: Vec<DeltaRevision>,
    /// The newest revision received (or the one before the start).
    last: i64,
    bytes: usize,
    oldest_ms: i64,
}

impl Pending {
    fn new(last: i64) -> Pending {
        Pending { revisions: Vec::new(), last, bytes: 0, oldest_ms: 0 }
    }

    fn add(&mut self, events: Vec<Event>, at: i64) -> Result<()> {
        for ev in events {
            let rev = ev.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            // A watch without fragmenting never splits a revision across responses (etcd's
            // contract, and Cairn's), and a flush happens between responses: every delta holds
            // whole revisions.
            if rev == self.last && !self.revisions.is_empty() {
                // More of the current revision's changes.
            } else if rev == self.last + 1 {
                if self.revisions.is_empty() {
                    self.oldest_ms = at;
                }
                self.revisions.push(DeltaRevision { revision: rev, observed_unix_ms: at, events: Vec::new() });
                self.last = rev;
            } else {
                return Err(WriterError::Failed(format!("the watch skipped from revision {} to {rev}", self.last)));
            }
            let ev = slim(ev);
            self.bytes += ev.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len()) + 32;
            self.revisions.last_mut().expect("pushed above").events.push(ev);
        }
        Ok(())
    }

    fn record(&self, generation: u64) -> Option<DeltaRecord> {
        let (first, last) = (self.revisions.first()?, self.revisions.last()?);
        Some(DeltaRecord {
            from_revision: first.revision,
            to_revision: last.revision,
            generation,
            revisions: self.revisions.clone(),
        })
    }

    fn clear(&mut self) {
        self.revisions.clear();
        self.bytes = 0;
    }
}

/// What a delta keeps of an event: a deletion's prev_kv without its value, a put's not at all.
fn slim(mut ev: Event) -> Event {
    if ev.r#type == EventType::Delete as i32 {
        ev.prev_kv = ev.prev_kv.map(|p| KeyValue { value: Vec::new(), ..p });
    } else {
        ev.prev_kv = None;
    }
    ev
}

async fn current_revision(endpoint: &str) -> Result<i64> {
    use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
    let channel = tokio::time::timeout(Duration::from_secs(5), cairn_api::dial::dial(endpoint)).await??;
    let status = MaintenanceClient::new(channel).status(cairn_api::proto::etcdserverpb::StatusRequest {}).await?;
    Ok(status.into_inner().header.map_or(0, |h| h.revision))
}

/// A full snapshot from the first member that gives one.
pub(crate) async fn upload_full(store: &Store, endpoints: &Endpoints, generation: u64) -> Result<Full> {
    let started = now_ms();
    let key = full_key(started, generation);
    let mut last = WriterError::Failed("no members to take a snapshot from".into());
    for ep in endpoints() {
        let channel = match tokio::time::timeout(Duration::from_secs(5), cairn_api::dial::dial(&ep)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                last = e.into();
                continue;
            }
            Err(_) => {
                last = WriterError::Failed(format!("dial {ep}: timed out"));
                continue;
            }
        };
        match full::upload(channel, store, &key, generation, started).await {
            Ok(f) => return Ok(f),
            Err(e) => last = WriterError::from(e).during(format!("snapshot from {ep}")),
        }
    }
    Err(last)
}

async fn sleep_until_ms(at: i64) {
    tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await;
}

/// A spawned task that ends with its owner (the watch, a full snapshot in flight).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
