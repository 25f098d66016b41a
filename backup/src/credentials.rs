//! Where S3 credentials come from: static keys (a Secret's), or the AWS SDK's default chain —
//! the environment, a web identity token file with a role (what EKS's IRSA injects), the
//! shared config and credentials files, the container (ECS, EKS Pod Identity) and instance
//! metadata endpoints — so that no long-lived key has to exist.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_s3::config::{Region, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    Keys {
        access_key_id: String,
        secret_access_key: String,
    },
    /// The AWS SDK's default credential chain.
    #[default]
    DefaultChain,
}

impl Credentials {
    /// The provider a client signs with. The chain's providers call STS or a metadata
    /// endpoint over `http`, in `region`.
    pub(crate) fn provider(&self, region: &Region, http: &SharedHttpClient) -> SharedCredentialsProvider {
        match self {
            Credentials::Keys { access_key_id, secret_access_key } => SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(access_key_id, secret_access_key, None, None, "cairn"),
            ),
            Credentials::DefaultChain => SharedCredentialsProvider::new(LazyChain {
                region: region.clone(),
                http: http.clone(),
                chain: tokio::sync::OnceCell::new(),
            }),
        }
    }
}

/// The default chain, built at its first use: building it is async (it reads the profile
/// files), and a store is made where there is no runtime to wait on. The client caches what
/// it answers until shortly before the credentials expire.
#[derive(Debug)]
struct LazyChain {
    region: Region,
    http: SharedHttpClient,
    chain: tokio::sync::OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let conf = ProviderConfig::without_region()
                        .with_region(Some(self.region.clone()))
                        .with_http_client(self.http.clone());
                    DefaultCredentialsChain::builder().configure(conf).build().await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}
