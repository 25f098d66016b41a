//! How the tools reach a member, with etcdctl's flags: TLS (`--cacert`, `--cert`, `--key`)
//! and a user (`--user name[:password]`, `--password`), whose token then goes with every
//! request.

use anyhow::{bail, Context};
use cairn_api::dial::DialOptions;
use cairn_api::proto::etcdserverpb::auth_client::AuthClient;
use cairn_api::proto::etcdserverpb::AuthenticateRequest;
use std::path::PathBuf;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientFlags {
    /// Verify the server's certificate with this CA bundle (https endpoints).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// This client's certificate, for mutual TLS.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The key of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// A user to act as: name[:password].
    #[arg(long)]
    pub user: Option<String>,
    /// The password of --user (when --user gives only the name).
    #[arg(long, requires = "user")]
    pub password: Option<String>,
}

/// A user's token, sent with each request (as etcd's clients send it).
#[derive(Clone, Default)]
pub struct Token(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

/// A connection to one member, as the flags' user.
pub type Conn = InterceptedService<Channel, Token>;

impl ClientFlags {
    fn tls_wanted(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some()
    }

    /// The user's name and password, or None without --user.
    fn credentials(&self) -> anyhow::Result<Option<(String, String)>> {
        let Some(user) = &self.user else { return Ok(None) };
        match (user.split_once(':'), &self.password) {
            (Some(_), Some(_)) => bail!("--user has a password and --password gives another"),
            (Some((name, password)), None) => Ok(Some((name.to_string(), password.to_string()))),
            (None, Some(password)) => Ok(Some((user.clone(), password.clone()))),
            (None, None) => bail!("no password for --user {user}: give --user {user}:PASSWORD or --password"),
        }
    }

    /// Dials `endpoint` (with TLS for an https URL, or a plain host:port when a TLS flag is
    /// given, as etcdctl does) and, with --user, authenticates.
    pub async fn connect(&self, endpoint: &str) -> anyhow::Result<Conn> {
        let endpoint = match endpoint.contains("://") {
            false if self.tls_wanted() => format!("https://{endpoint}"),
            _ => endpoint.to_string(),
        };
        let mut opts = DialOptions::default();
        if endpoint.starts_with("https://") || endpoint.starts_with("unixs://") {
            let cert_key = self.cert.as_deref().zip(self.key.as_deref());
            opts.tls = Some(cairn_node::tls::tool::client_config(self.cacert.as_deref(), cert_key)?);
        }
        let channel = cairn_api::dial::connect(&endpoint, &opts).await?;
        let Some((name, password)) = self.credentials()? else {
            return Ok(InterceptedService::new(channel, Token::default()));
        };
        let reply = AuthClient::new(channel.clone())
            .authenticate(AuthenticateRequest { name, password })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))
            .with_context(|| format!("authenticating at {endpoint}"))?;
        let token = reply.into_inner().token.parse().context("the server's token is not ASCII")?;
        Ok(InterceptedService::new(channel, Token(Some(token))))
    }
}
