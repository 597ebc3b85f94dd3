//! AWS adapters for the ports in `tributary_core::ports`: the same
//! semantics as the local adapters (`tributary-local`), proven by one
//! contract suite run against both (`tests/contract.rs`, on moto server).

mod adapters;
mod dynamodb;
mod glue;
mod kinesis;
mod lambda;
mod s3;
mod secrets;
mod sfn;
mod sns;
mod sqs;

pub use adapters::{
    AwsAdapters, MissingEnvironment, WiringError, APPROVAL_BASE_URL, APPROVAL_SECRET,
    APPROVAL_SECRET_ARN, ENVIRONMENT,
};
/// What every adapter is built from (the CLI builds its own readers too).
pub use aws_config::SdkConfig;
pub use dynamodb::DynamoStateStore;
pub use glue::GlueCatalog;
pub use kinesis::KinesisProducer;
pub use lambda::{consumer_function_variable, LambdaConsumerSwitch};
pub use s3::S3ObjectStore;
pub use sfn::{SfnCallbacks, SfnWorkflows};
pub use sns::SnsNotifier;
pub use sqs::{QueueMessage, SqsQueue};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tributary_core::ports::PortError;

/// Where the adapters connect. `endpoint_url` (or `AWS_ENDPOINT_URL`)
/// points every client at an emulator; S3 then uses path-style addressing.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

impl AwsSettings {
    pub fn from_env() -> AwsSettings {
        AwsSettings {
            endpoint_url: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            region: std::env::var("AWS_REGION").ok().filter(|v| !v.is_empty()),
        }
    }

    /// The SDK's standard configuration (credentials chain, standard retry
    /// mode with its default attempts) plus the overrides.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = config_loader();
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        loader.load().await
    }
}

/// Where every SDK configuration starts, the adapters' and the tests':
/// the SDK's defaults, with HTTPS through rustls on ring. The SDK's own
/// default client is rustls on aws-lc, a C library that was the largest
/// part of a function's zip after its own code (infra/README.md); ring
/// speaks the same TLS 1.2/1.3 suites AWS endpoints offer.
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// The reason TLS refused the server's certificate, if that is why a
/// request could not be sent. Trying again meets the same certificate, so
/// unlike other connection failures this is not worth a retry.
fn refused_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        // The TLS connector wraps rustls' error in I/O errors, whose
        // `source` skips what they wrap: look inside them.
        let mut inner: &(dyn std::error::Error + 'static) = current;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(rustls::Error::InvalidCertificate(reason)) = inner.downcast_ref() {
            return Some(format!("{reason:?}"));
        }
        cause = current.source();
    }
    None
}

/// Error codes after which trying again can succeed.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "ConcurrentModificationException",
];

/// An SDK error as a port error that says whether a retry helps and, when
/// it does not, what the operator should check.
pub(crate) fn port_error<E>(
    operation: String,
    resource: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(_) => {
            if let Some(refused) = refused_certificate(&err) {
                let hint = format!(
                    "the TLS certificate of {resource}'s endpoint was refused ({refused}): \
                     check the endpoint URL (AWS_ENDPOINT_URL) and the trust store \
                     (SSL_CERT_FILE names a private authority)"
                );
                return PortError::permanent(operation, hint, err);
            }
            return PortError::transient(operation, err);
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return PortError::transient(operation, err)
        }
        SdkError::ConstructionFailure(_) => {
            return PortError::permanent(operation, "the request could not be built: a bug", err)
        }
        _ => {}
    }
    // A response without a body (S3 answers HEAD so) has no error code:
    // its status says what happened.
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = match (err.code(), status) {
        (Some(code), _) => code.to_string(),
        (None, Some(403)) => "AccessDenied".to_string(),
        (None, Some(404)) => "NotFound".to_string(),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => String::new(),
    };
    if TRANSIENT_CODES.contains(&code.as_str()) {
        return PortError::transient(operation, err);
    }
    let hint = match code.as_str() {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch" => {
            format!("{code}: check the IAM role's permissions on {resource} and the credentials")
        }
        "NoSuchBucket" => format!("bucket {resource} does not exist: check TRIBUTARY_BUCKET"),
        "ResourceNotFoundException" => {
            format!("{resource} does not exist: check its name (TRIBUTARY_TABLE for the state table) and the region")
        }
        "StateMachineDoesNotExist" => {
            format!("state machine {resource} does not exist: check TRIBUTARY_STATE_MACHINE_ARN")
        }
        "NotFound" | "NotFoundException" => format!("{resource} does not exist"),
        "TaskDoesNotExist" | "TaskTimedOut" | "InvalidToken" => {
            "the task token is no longer valid: the execution ended or timed out".to_string()
        }
        "ValidationException" => format!("the request was refused as invalid for {resource}"),
        _ => match err.message() {
            Some(message) => format!("{code} on {resource}: {message}"),
            None => format!("{code} on {resource}"),
        },
    };
    PortError::permanent(operation, hint, err)
}
