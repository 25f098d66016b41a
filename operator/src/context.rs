//! What every reconcile shares: the API client, the Event recorder, how long each member has
//! been unhealthy, the metrics, and the backup writers running per cluster.

use crate::metrics::Metrics;
use crate::reconcile::observe;
use kube::runtime::events::{Recorder, Reporter};
use std::sync::Arc;

/// The field manager of the operator's server-side applies, and its name on Events.
pub const MANAGER: &str = "cairn-operator";

pub struct Ctx {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub unhealthy: observe::Unhealthy,
    pub metrics: Arc<Metrics>,
    pub backups: crate::backup::runner::Runners,
}

impl Ctx {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Ctx {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Ctx { client, recorder, unhealthy: Default::default(), metrics, backups: Default::default() }
    }
}
