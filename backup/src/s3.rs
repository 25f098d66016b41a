//! The S3 calls backups need, over aws-sdk-s3: objects under one prefix, a conditional PUT
//! for the catalog, listing, and multipart uploads fed from a stream.

use crate::credentials::Credentials;
use crate::BackupError;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

/// Where backups live and how to reach the store.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub bucket: String,
    pub prefix: String,
    /// For S3-compatible stores (MinIO, moto, …).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    pub credentials: Credentials,
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ending in '/'.
    prefix: String,
}

/// An S3 call that failed, for the call `what` was.
fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: String,
) -> impl FnOnce(SdkError<E, R>) -> BackupError {
    move |e| BackupError::S3 { what, why: DisplayErrorContext(e).to_string() }
}

fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl Store {
    pub fn new(cfg: &S3Config) -> Store {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        // As the SDK's own region chain: what is configured, then the environment (EKS injects
        // AWS_REGION), then us-east-1, where a bucket without a location lives.
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
        let region = aws_sdk_s3::config::Region::new(region.unwrap_or_else(|| "us-east-1".into()));
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .credentials_provider(cfg.credentials.provider(&region, &http))
            .region(region)
            .force_path_style(cfg.force_path_style)
            .http_client(http);
        if let Some(endpoint) = &cfg.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let prefix = cfg.prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Store { client: aws_sdk_s3::Client::from_conf(conf.build()), bucket: cfg.bucket.clone(), prefix }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `s3://bucket/prefix/name`, for messages.
    pub fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name))
    }

    /// The object and its ETag, or None if there is none.
    pub async fn get(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, BackupError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(self.key(name)).send().await {
            Ok(out) => out,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(failed(format!("get {}", self.url(name)))(e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let read = |e: aws_sdk_s3::primitives::ByteStreamError| BackupError::S3 {
            what: format!("read {}", self.url(name)),
            why: e.to_string(),
        };
        let body = out.body.collect().await.map_err(read)?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    /// Streams an object into `out`; returns its size. `seen` gets every piece as it comes.
    pub async fn download(
        &self,
        name: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
        mut seen: impl FnMut(&[u8]),
    ) -> Result<u64, BackupError> {
        use tokio::io::AsyncWriteExt;
        let got = self.client.get_object().bucket(&self.bucket).key(self.key(name)).send().await;
        let mut body = match got {
            Ok(o) => o.body,
            Err(e) if status(&e) == Some(404) => {
                return Err(BackupError::Object(format!("{}: missing", self.url(name))))
            }
            Err(e) => return Err(failed(format!("get {}", self.url(name)))(e)),
        };
        let mut n = 0;
        let read = |e: aws_sdk_s3::primitives::ByteStreamError| BackupError::S3 {
            what: format!("read {}", self.url(name)),
            why: e.to_string(),
        };
        while let Some(chunk) = body.try_next().await.map_err(read)? {
            seen(&chunk);
            out.write_all(&chunk).await.map_err(BackupError::io(format!("writing {}", self.url(name))))?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// Writes an object unconditionally (names that are never reused).
    pub async fn put(&self, name: &str, body: Vec<u8>) -> Result<(), BackupError> {
        let req = self.client.put_object().bucket(&self.bucket).key(self.key(name)).body(ByteStream::from(body));
        req.send().await.map_err(failed(format!("put {}", self.url(name))))?;
        Ok(())
    }

    /// Replaces an object only if it is still the version with `etag` (None: only if there
    /// is no such object yet). Returns the new ETag; `Conflict` if another writer was first.
    pub async fn put_if(&self, name: &str, body: Vec<u8>, etag: Option<&str>) -> Result<String, BackupError> {
        let mut req = self.client.put_object().bucket(&self.bucket).key(self.key(name)).body(ByteStream::from(body));
        req = match etag {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
            // 412: the condition failed; 409: a concurrent conditional write won.
            Err(e) if matches!(status(&e), Some(412) | Some(409)) => Err(BackupError::Conflict(self.key(name))),
            Err(e) => Err(failed(format!("put {}", self.url(name)))(e)),
        }
    }

    /// Every object name under `dir` (relative to the prefix), in key order.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, BackupError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let req =
                self.client.list_objects_v2().bucket(&self.bucket).prefix(self.key(dir)).set_continuation_token(token);
            let out = req.send().await.map_err(failed(format!("list {}", self.url(dir))))?;
            for o in out.contents() {
                if let Some(name) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    names.push(name.to_string());
                }
            }
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        let req = self.client.delete_object().bucket(&self.bucket).key(self.key(name));
        req.send().await.map_err(failed(format!("delete {}", self.url(name))))?;
        Ok(())
    }

    /// The multipart uploads in progress under `dir`: (object name, upload id).
    pub async fn uploads(&self, dir: &str) -> Result<Vec<(String, String)>, BackupError> {
        let req = self.client.list_multipart_uploads().bucket(&self.bucket).prefix(self.key(dir));
        let out = req.send().await.map_err(failed(format!("list uploads under {}", self.url(dir))))?;
        Ok(out
            .uploads()
            .iter()
            .filter_map(|u| {
                let name = u.key()?.strip_prefix(&self.prefix)?.to_string();
                Some((name, u.upload_id()?.to_string()))
            })
            .collect())
    }

    /// Gives back the parts of an upload that will never complete.
    pub async fn abort_upload(&self, name: &str, upload_id: &str) -> Result<(), BackupError> {
        let req = self.client.abort_multipart_upload().bucket(&self.bucket).key(self.key(name)).upload_id(upload_id);
        req.send().await.map_err(failed(format!("abort the upload of {}", self.url(name))))?;
        Ok(())
    }

    pub async fn create_bucket_if_missing(&self) -> Result<(), BackupError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        let req = self.client.create_bucket().bucket(&self.bucket);
        req.send().await.map_err(failed(format!("create bucket {}", self.bucket)))?;
        Ok(())
    }

    /// Starts a multipart upload of `name`.
    pub async fn multipart(&self, name: &str) -> Result<Multipart, BackupError> {
        let req = self.client.create_multipart_upload().bucket(&self.bucket).key(self.key(name));
        let out = req.send().await.map_err(failed(format!("start upload of {}", self.url(name))))?;
        let Some(upload_id) = out.upload_id() else {
            return Err(BackupError::S3 {
                what: format!("start upload of {}", self.url(name)),
                why: "no upload id".into(),
            });
        };
        let upload_id = upload_id.to_string();
        Ok(Multipart { store: self.clone(), key: self.key(name), upload_id, parts: Vec::new() })
    }
}

/// An upload in progress. Parts other than the last must be at least 5 MiB (S3's rule).
pub struct Multipart {
    store: Store,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl Multipart {
    pub async fn part(&mut self, body: Vec<u8>) -> Result<(), BackupError> {
        let number = self.parts.len() as i32 + 1;
        let s = &self.store;
        let req = s.client.upload_part().bucket(&s.bucket).key(&self.key).upload_id(&self.upload_id);
        let out = req
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(failed(format!("upload part {number} of s3://{}/{}", s.bucket, self.key)))?;
        self.parts
            .push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_string)).build());
        Ok(())
    }

    pub async fn complete(self) -> Result<(), BackupError> {
        let s = &self.store;
        let done = CompletedMultipartUpload::builder().set_parts(Some(self.parts.clone())).build();
        let req = s.client.complete_multipart_upload().bucket(&s.bucket).key(&self.key).upload_id(&self.upload_id);
        req.multipart_upload(done)
            .send()
            .await
            .map_err(failed(format!("complete upload of s3://{}/{}", s.bucket, self.key)))?;
        Ok(())
    }

    /// Gives the parts back (an upload that failed half-way costs nothing after this).
    pub async fn abort(self) {
        let s = &self.store;
        let req = s.client.abort_multipart_upload().bucket(&s.bucket).key(&self.key).upload_id(&self.upload_id);
        if let Err(e) = req.send().await {
            tracing::warn!(key = %self.key, "aborting a multipart upload: {}", DisplayErrorContext(e));
        }
    }
}
