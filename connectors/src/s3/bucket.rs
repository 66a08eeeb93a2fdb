//! An S3 bucket (any S3-compatible endpoint): settings, a lazily built client, and the few
//! object operations the archive and the warehouse staging need, with their failures
//! classified.
//!
//! Credentials are the static keys in the settings, or else the default AWS chain
//! (environment, profile, web identity, container and instance metadata), resolved on first use
//! so building a destination does no I/O. Checksums are only computed when an operation
//! requires them, which every S3-compatible server accepts.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::OnceCell;

use crate::destination::BuildContext;
use crate::error::{BuildError, DeliveryError};
use crate::secret::Secret;

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How long one attempt of a request (a whole object or one part, and its answer) may take
/// before it fails as retryable: a server that accepts a connection and never answers must not
/// hold a batch, and the offsets behind it, forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long connecting may take (the SDK's own default is 3.1 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where objects go: a bucket, a key prefix, and how to reach and sign for them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// A key prefix (no leading or trailing `/` needed).
    #[serde(default)]
    pub prefix: String,
    /// The bucket's region.
    #[serde(default = "default_region")]
    pub region: String,
    /// An S3-compatible endpoint URL (default: AWS's endpoint for the region).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    /// A static access key id (default: the AWS credential chain).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The static secret access key, with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl S3Location {
    /// Checks the settings (no I/O); `field` prefixes the names in errors (`""` or `"staging."`).
    pub fn validate(&self, ctx: &BuildContext, field: &str) -> Result<(), BuildError> {
        if self.bucket.is_empty() {
            return Err(ctx.invalid(&format!("{field}bucket"), "must not be empty"));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(ctx.invalid(
                &format!("{field}secret_access_key"),
                "access_key_id and secret_access_key go together",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(ctx.invalid(&format!("{field}endpoint"), "must be an http(s) URL"));
            }
        }
        Ok(())
    }

    /// What distinguishes one client from another: endpoint, region, addressing and
    /// credentials (the secret only as a hash).
    fn client_key(&self) -> String {
        let secret = self
            .secret_access_key
            .as_ref()
            .map(|s| hex::encode(Sha256::digest(s.expose().as_bytes())))
            .unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{secret}",
            self.endpoint.as_deref().unwrap_or(""),
            self.region,
            self.path_style,
            self.access_key_id.as_deref().unwrap_or("")
        )
    }

    /// `prefix/rest`, or `rest` without a prefix.
    pub fn key(&self, rest: &str) -> String {
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{prefix}/{rest}")
        }
    }
}

/// The clients of this process by [`S3Location::client_key`].
fn clients() -> &'static tokio::sync::Mutex<HashMap<String, Weak<Client>>> {
    static CLIENTS: OnceLock<tokio::sync::Mutex<HashMap<String, Weak<Client>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A client for `loc`'s endpoint, region, addressing and credentials.
async fn build_client(loc: &S3Location) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut config = match (&loc.access_key_id, &loc.secret_access_key) {
        (Some(id), Some(secret)) => aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                id,
                secret.expose(),
                None,
                None,
                "courier-settings",
            )),
        _ => {
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http.clone())
                .region(Region::new(loc.region.clone()))
                .load()
                .await;
            aws_sdk_s3::config::Builder::from(&shared)
        }
    };
    config = config
        .http_client(http)
        .region(Region::new(loc.region.clone()))
        .force_path_style(loc.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = &loc.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// A bucket with a client built on first use.
#[derive(Debug)]
pub struct Bucket {
    location: S3Location,
    client: OnceCell<Arc<Client>>,
}

impl Bucket {
    /// A bucket at `location`; nothing is resolved or connected yet.
    pub fn new(location: S3Location) -> Bucket {
        Bucket {
            location,
            client: OnceCell::new(),
        }
    }

    /// The settings.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The client for this bucket's endpoint, region, addressing and credentials: one per
    /// distinct combination per process (a client holds a connection pool and its resolved
    /// configuration, about half a megabyte; a hundred customers archiving to one endpoint
    /// share one).
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let key = self.location.client_key();
                let mut clients = clients().lock().await;
                clients.retain(|_, c| c.strong_count() > 0);
                if let Some(client) = clients.get(&key).and_then(Weak::upgrade) {
                    return client;
                }
                let client = Arc::new(build_client(&self.location).await);
                clients.insert(key, Arc::downgrade(&client));
                client
            })
            .await
    }

    /// Writes `body` to `key` (in parts when it is large); `Ok` once S3 confirmed the write.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), DeliveryError> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, body, content_type).await;
        }
        self.client()
            .await
            .put_object()
            .bucket(&self.location.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("put", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), DeliveryError> {
        let client = self.client().await;
        let bucket = &self.location.bucket;
        let upload = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify("start multipart upload of", key, e))?;
        let Some(upload_id) = upload.upload_id() else {
            return Err(DeliveryError::retryable(format!(
                "s3: no upload id for {key}"
            )));
        };
        let mut parts = Vec::new();
        let mut result = Ok(());
        for (i, chunk) in body.chunks(PART_SIZE).enumerate() {
            let number = i as i32 + 1;
            match client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
            {
                Ok(part) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(e) => {
                    result = Err(classify("upload part of", key, e));
                    break;
                }
            }
        }
        if result.is_ok() {
            result = client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("complete multipart upload of", key, e));
        }
        if result.is_err() {
            // Best effort: an unfinished upload only costs storage until a lifecycle rule
            // removes it.
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    /// Reads the object at `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, DeliveryError> {
        let object = self
            .client()
            .await
            .get_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("get", key, e))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| DeliveryError::retryable(format!("s3: cannot read {key}: {e}")))?;
        Ok(body.into_bytes().to_vec())
    }

    /// The keys that start with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, DeliveryError> {
        self.list_keys(prefix, None).await
    }

    /// The keys that start with `prefix` and have no `/` after it, in key order: one
    /// "directory" only, which servers that keep objects as files (and index-backed ones
    /// alike) answer without walking the rest of the bucket.
    pub async fn list_in_directory(&self, prefix: &str) -> Result<Vec<String>, DeliveryError> {
        self.list_keys(prefix, Some("/")).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<String>, DeliveryError> {
        let client = self.client().await;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes the object at `key` (deleting a missing object succeeds).
    pub async fn delete(&self, key: &str) -> Result<(), DeliveryError> {
        self.client()
            .await
            .delete_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("delete", key, e))?;
        Ok(())
    }
}

/// Server errors, throttling and transport failures pass; other answers (access denied, no
/// such bucket) are permanent until someone fixes the settings.
fn classify<E>(action: &str, key: &str, err: SdkError<E, HttpResponse>) -> DeliveryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = |m: String| DeliveryError::retryable(m);
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("unknown");
            let message = format!(
                "s3: cannot {action} {key}: {code}: {}",
                service.err().message().unwrap_or("no message")
            );
            let transient = status >= 500
                || status == 408
                || status == 429
                || matches!(code, "SlowDown" | "RequestTimeout" | "InternalError");
            let err = if transient {
                retryable(message.clone())
            } else {
                DeliveryError::permanent(message.clone())
            };
            err.with_response(status, message)
        }
        _ => retryable(format!(
            "s3: cannot {action} {key}: {}",
            DisplayErrorContext(&err)
        )),
    }
}
