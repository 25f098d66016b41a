//! A real S3 server for tests: moto 5.2.5's server (installed by test.sh in the venv at
//! `$CAIRN_VENV`, default /var/tmp/cairn-venv), on a free loopback port, killed on drop.

use crate::harness::{free_port, http_get};
use cairn_backup::credentials::Credentials;
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

/// The venv's Python: moto's server (with `SERVER`'s correction) and boto3 run under it.
fn python() -> PathBuf {
    moto_bin().with_file_name("python3")
}

fn moto_bin() -> PathBuf {
    let venv = std::env::var("CAIRN_VENV").unwrap_or_else(|_| "/var/tmp/cairn-venv".into());
    let bin = PathBuf::from(venv).join("bin/moto_server");
    assert!(bin.exists(), "{} is missing: run ./test.sh (it installs moto[server]==5.2.5)", bin.display());
    bin
}

/// moto's server, with one correction: AWS answers AssumeRoleWithWebIdentity unsigned (the
/// token is the proof), while moto 5.2.5, once it checks credentials, fails every STS call
/// without a signature (a KeyError on the Authorization header, answered 500).
const SERVER: &str = r#"
import sys
from moto.sts.responses import TokenResponse
checked = TokenResponse._authenticate_and_authorize_normal_action
def check(self, resource="*"):
    if self._get_action() != "AssumeRoleWithWebIdentity":
        checked(self, resource)
TokenResponse._authenticate_and_authorize_normal_action = check
from moto.server import main
sys.exit(main())
"#;

impl Moto {
    pub fn start(log: &std::path::Path) -> Moto {
        let port = free_port();
        let out = std::fs::File::create(log).expect("moto's log");
        let child = Command::new(python())
            .args(["-c", SERVER, "-H", "127.0.0.1", "-p", &port.to_string()])
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
            credentials: Credentials::Keys { access_key_id: ACCESS_KEY.into(), secret_access_key: SECRET_KEY.into() },
        }
    }

    /// Makes an IAM role that a web identity may assume and that may do anything to
    /// `bucket`, then has moto check every later S3 call as S3 does (a signature from known
    /// credentials, a policy that allows it), so that the static test keys are refused from
    /// then on. Returns the role's ARN. Uses boto3 from moto's venv: a real client.
    pub fn web_identity_role(&self, role: &str, bucket: &str) -> String {
        let script = r#"
import boto3, json, sys, urllib.request
endpoint, role, bucket = sys.argv[1:]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
         "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example"}}]}
arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
iam.put_role_policy(RoleName=role, PolicyName="backups", PolicyDocument=json.dumps(allow))
urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                              headers={"Content-Type": "text/plain"}))
print(arn)
"#;
        let out = Command::new(python())
            .args(["-c", script, &self.endpoint, role, bucket])
            .output()
            .expect("run python from moto's venv");
        assert!(out.status.success(), "making the role: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
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
