//! One backup writer per CairnCluster whose spec asks for backups, kept by the reconciler:
//! started once the cluster has voters to read from, restarted when the backup settings or
//! credentials change, stopped when backups are turned off or the cluster goes. The operator
//! runs writers only while it holds the leader Lease (it exits when it loses it, and its
//! writers with it); the catalog's generations fence whatever an old one had in flight.

use super::cron::Schedule;
use super::writer::{Progress, Writer, WriterConfig};
use crate::crd::{BackupSpec, CairnCluster, S3Location};
use cairn_backup::credentials::Credentials;
use cairn_backup::s3::{S3Config, Store};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

struct Running {
    settings: String,
    task: tokio::task::JoinHandle<()>,
    progress: Arc<Mutex<Progress>>,
    endpoints: Arc<Mutex<Vec<String>>>,
}

#[derive(Default)]
pub struct Runners(Mutex<HashMap<String, Running>>);

/// Full snapshots kept when the spec says nothing.
pub const DEFAULT_KEEP: usize = 7;

/// The S3 settings of a location, its credentials read from the Secret it names (in `ns`),
/// or the operator's default credential chain when it names none.
pub async fn s3_config(client: &kube::Client, ns: &str, s3: &S3Location) -> Result<S3Config, String> {
    let credentials = match &s3.credentials_secret {
        Some(name) => secret_keys(client, ns, name).await?,
        None => Credentials::DefaultChain,
    };
    Ok(S3Config {
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.clone(),
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        force_path_style: s3.force_path_style,
        credentials,
    })
}

async fn secret_keys(client: &kube::Client, ns: &str, name: &str) -> Result<Credentials, String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading secret {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("secret {ns}/{name} not found"))?;
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("secret {ns}/{name} has no key {k}"))
    };
    Ok(Credentials::Keys { access_key_id: key("accessKeyId")?, secret_access_key: key("secretAccessKey")? })
}

/// The writer's settings from the spec; a message for the first thing wrong.
pub fn writer_config(b: &BackupSpec) -> Result<WriterConfig, String> {
    let schedule = Schedule::parse(&b.full_schedule).map_err(|e| format!("spec.backup.fullSchedule: {e}"))?;
    let delta_interval =
        crate::units::duration(&b.delta_interval).map_err(|e| format!("spec.backup.deltaInterval: {e}"))?;
    if delta_interval < std::time::Duration::from_secs(1) {
        return Err("spec.backup.deltaInterval: at least 1s".into());
    }
    let retention = b.retention.clone().unwrap_or_default();
    let max_age = match &retention.max_age {
        Some(a) => Some(crate::units::duration(a).map_err(|e| format!("spec.backup.retention.maxAge: {e}"))?),
        None => None,
    };
    let keep = retention.full_snapshots.map_or(DEFAULT_KEEP, |n| n.max(1) as usize);
    Ok(WriterConfig { schedule, delta_interval, keep, max_age })
}

pub fn id(c: &CairnCluster) -> String {
    format!("{}/{}", crate::resources::namespace(c), crate::resources::name(c))
}

impl Runners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure the cluster's writer runs with these settings and reads from `endpoints`.
    pub fn ensure(&self, id: &str, s3: S3Config, cfg: WriterConfig, endpoints: Vec<String>) {
        let settings = format!("{s3:?}{cfg:?}");
        let mut all = self.lock();
        if let Some(r) = all.get(id).filter(|r| r.settings == settings && !r.task.is_finished()) {
            *r.endpoints.lock().unwrap_or_else(|e| e.into_inner()) = endpoints;
            return;
        }
        if let Some(old) = all.remove(id) {
            old.task.abort();
        }
        let shared = Arc::new(Mutex::new(endpoints));
        let reader = shared.clone();
        let progress = Arc::new(Mutex::new(Progress::default()));
        let writer = Writer {
            store: Store::new(&s3),
            endpoints: Arc::new(move || reader.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            cfg,
            progress: progress.clone(),
        };
        tracing::info!(cluster = id, "starting the backup writer");
        let task = tokio::spawn(writer.run());
        all.insert(id.to_string(), Running { settings, task, progress, endpoints: shared });
    }

    pub fn stop(&self, id: &str) {
        if let Some(r) = self.lock().remove(id) {
            tracing::info!(cluster = id, "stopping the backup writer");
            r.task.abort();
        }
    }

    /// The writer's progress, with the notes it left for Events taken out.
    pub fn take_progress(&self, id: &str) -> Option<Progress> {
        let all = self.lock();
        let mut p = all.get(id)?.progress.lock().unwrap_or_else(|e| e.into_inner());
        let out = p.clone();
        p.notes.clear();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Retention;

    fn spec(schedule: &str, interval: &str, retention: Option<Retention>) -> BackupSpec {
        let s3 = S3Location {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            force_path_style: false,
            credentials_secret: Some("creds".into()),
        };
        BackupSpec { s3, full_schedule: schedule.into(), delta_interval: interval.into(), retention }
    }

    #[test]
    fn the_spec_becomes_the_writers_settings() {
        let retention = Retention { full_snapshots: Some(3), max_age: Some("168h".into()) };
        let cfg = writer_config(&spec("0 */6 * * *", "10s", Some(retention))).unwrap();
        assert_eq!((cfg.keep, cfg.max_age), (3, Some(std::time::Duration::from_secs(168 * 3600))));
        assert_eq!(cfg.delta_interval, std::time::Duration::from_secs(10));
        assert_eq!(writer_config(&spec("@daily", "1m", None)).unwrap().keep, DEFAULT_KEEP);
    }

    #[test]
    fn a_bad_spec_names_its_field() {
        let bad_age = Some(Retention { full_snapshots: None, max_age: Some("7d".into()) });
        for (s, says) in [
            (spec("0 */6 * *", "10s", None), "spec.backup.fullSchedule"),
            (spec("@daily", "ten", None), "spec.backup.deltaInterval"),
            (spec("@daily", "500ms", None), "at least 1s"),
            (spec("@daily", "10s", bad_age), "spec.backup.retention.maxAge"),
        ] {
            let err = writer_config(&s).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
