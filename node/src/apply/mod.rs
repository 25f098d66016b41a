//! The applier: the only writer of the backend. It takes committed raft entries in order and
//! applies each as ONE backend batch that also records the entry's index, so a restart
//! resumes exactly after the last applied entry and never applies one twice.

pub mod ops;
pub mod txn;

use crate::grpc::status::EtcdError;
use crate::lease::Lessor;
use crate::proto::cairnpb::{internal_request::Request, InternalRequest};
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::storage::mvcc::{MvccStore, WriteTxn};
use crate::wait::Waiters;
use prost::Message;
use raft::eraftpb::{Entry, EntryType};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
}

pub type ApplyResult = Result<Applied, EtcdError>;

pub struct Applier {
    mvcc: Arc<MvccStore>,
    lessor: Arc<Lessor>,
    waiters: Arc<Waiters>,
    applied: watch::Sender<u64>,
    last_applied: u64,
}

impl Applier {
    pub fn new(
        mvcc: Arc<MvccStore>,
        lessor: Arc<Lessor>,
        waiters: Arc<Waiters>,
        applied: watch::Sender<u64>,
        last_applied: u64,
    ) -> Applier {
        Applier {
            mvcc,
            lessor,
            waiters,
            applied,
            last_applied,
        }
    }

    /// Applies committed entries in order. A backend failure here cannot be answered to a
    /// client and must not be skipped, so it stops the member (as etcd does).
    pub fn apply(&mut self, entries: &[Entry]) {
        for e in entries {
            if e.index <= self.last_applied {
                continue;
            }
            let outcome = match e.get_entry_type() {
                EntryType::EntryNormal if !e.data.is_empty() => self.apply_request(e),
                // Leader no-ops and (until membership changes land) conf changes only move
                // the applied index.
                _ => self
                    .mvcc
                    .write()
                    .commit(e.index)
                    .map(|_| ())
                    .map_err(|err| err.to_string()),
            };
            if let Err(err) = outcome {
                tracing::error!(index = e.index, error = %err, "apply failed; stopping");
                std::process::abort();
            }
            self.last_applied = e.index;
        }
        self.applied.send_replace(self.last_applied);
    }

    fn apply_request(&mut self, e: &Entry) -> Result<(), String> {
        let req = match InternalRequest::decode(&e.data[..]) {
            Ok(r) => r,
            Err(err) => return Err(format!("undecodable entry: {err}")),
        };
        let mut w = self.mvcc.write();
        let result = self.execute(&mut w, req.request);
        if result.is_err() && w.has_changes() {
            return Err(format!(
                "request {} failed after writing: {:?}",
                req.id, result
            ));
        }
        w.commit(e.index).map_err(|err| err.to_string())?;
        let result = result.map(|a| match a {
            // etcd reports the store revision after a compaction.
            Applied::Compaction(mut c) => {
                c.header = Some(ResponseHeader {
                    revision: self.mvcc.current_revision(),
                    ..Default::default()
                });
                Applied::Compaction(c)
            }
            other => other,
        });
        self.waiters.trigger(req.id, result);
        Ok(())
    }

    fn execute(&self, w: &mut WriteTxn<'_>, req: Option<Request>) -> ApplyResult {
        match req {
            Some(Request::Put(p)) => {
                ops::check_put(w, &self.lessor, &p)?;
                ops::put(w, &p).map(Applied::Put)
            }
            Some(Request::DeleteRange(d)) => ops::delete_range(w, &d).map(Applied::DeleteRange),
            Some(Request::Txn(t)) => txn::txn(w, &self.lessor, &t).map(Applied::Txn),
            Some(Request::Compaction(c)) => {
                w.compact(c.revision)?;
                Ok(Applied::Compaction(CompactionResponse { header: None }))
            }
            None => Err(EtcdError::Internal("empty request".into())),
        }
    }
}
