//! A real S3 server for tests: moto 5.2.5's server (installed by test.sh in the venv at
//! `$CAIRN_VENV`, default /var/tmp/cairn-venv), on a free loopback port, killed on drop.

use crate::harness::{free_port, http_get};
use cairn_backup::s3::{S3Config, Store};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "cairn-test";
pub const SECRET_KEY: &str = "cairn-test-secret";

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

fn moto_bin() -> PathBuf {
    let venv = std::env::var("CAIRN_VENV").unwrap_or_else(|_| "/var/tmp/cairn-venv".into());
    let bin = PathBuf::from(venv).join("bin/moto_server");
    assert!(bin.exists(), "{} is missing: run ./test.sh (it installs moto[server]==5.2.5)", bin.display());
    bin
}

impl Moto {
    pub fn start(log: &std::path::Path) -> Moto {
        let port = free_port();
        let out = std::fs::File::create(log).expect("moto's log");
        let child = Command::new(moto_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start moto_server");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&addr, "/").is_none() {
            assert!(Instant::now() < deadline, "moto_server did not answer on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint: format!("http://{addr}") }
    }

    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            force_path_style: true,
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }
    }

    /// A store under `prefix` in `bucket`, the bucket made if missing.
    pub async fn store(&self, bucket: &str, prefix: &str) -> Store {
        let store = Store::new(&self.config(bucket, prefix));
        store.create_bucket_if_missing().await.expect("create the bucket");
        store
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
