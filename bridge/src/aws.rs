//! AWS SDK set-up (the standard credential and region chain, rustls with ring, an optional
//! endpoint override for LocalStack or moto) and the retry decision for failed API calls.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::SharedHttpClient;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::Error;

/// AWS endpoint and region. The credentials come from the standard chain: environment,
/// shared config and credentials files, web identity, ECS and EC2 metadata.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Endpoint of every AWS API, for LocalStack or moto; `AWS_ENDPOINT_URL` also sets it.
    pub endpoint_url: Option<String>,
    /// Region; without it the standard chain decides (`AWS_REGION`, the profile, EC2 metadata).
    pub region: Option<String>,
}

/// Loads the SDK configuration from `settings` and the standard chains.
pub async fn load(settings: &AwsSettings) -> Result<SdkConfig, Error> {
    if let Some(url) = &settings.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Config {
                name: "--endpoint-url",
                reason: format!("{url:?} is not an http:// or https:// URL"),
            });
        }
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(Error::Config {
            name: "--region",
            reason: "no AWS region is configured; pass --region or set AWS_REGION".into(),
        });
    }
    Ok(config)
}

/// Creates the HTTP client of every AWS call: hyper with rustls on ring, trusting the
/// system's root certificates.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Whether retrying a failed call can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Throttling, a server error, a timeout or a network failure: retry with backoff.
    Transient,
    /// The request itself is wrong (bad queue, missing permission, invalid parameter).
    Permanent,
}

/// Error codes that AWS services return for throttling and transient conditions, from the
/// AWS SDKs' standard retry classification plus the SNS and SQS throttling codes.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "Throttled",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "KMSThrottling",
    "KmsThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Classifies a failed SDK call of any AWS service.
pub fn classify<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Failure {
    match error {
        SdkError::ConstructionFailure(_) => Failure::Permanent,
        SdkError::ServiceError(service) => {
            classify_response(service.raw().status().as_u16(), service.err().code())
        }
        // Timeouts, dispatch failures (connection refused, DNS, TLS) and responses that could
        // not be parsed may all pass with the next attempt.
        _ => Failure::Transient,
    }
}

/// Classifies an error response by its HTTP status and AWS error code.
pub fn classify_response(status: u16, code: Option<&str>) -> Failure {
    if status >= 500 || status == 429 || code.is_some_and(|code| TRANSIENT_CODES.contains(&code)) {
        Failure::Transient
    } else {
        Failure::Permanent
    }
}

/// Returns the error code of a failed SDK call, when the service sent one.
pub fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Option<String> {
    match error {
        SdkError::ServiceError(service) => service.err().code().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_classify_by_status_and_code() {
        let table = [
            (500, None, Failure::Transient),
            (503, Some("ServiceUnavailable"), Failure::Transient),
            (429, None, Failure::Transient),
            (400, Some("Throttling"), Failure::Transient),
            (400, Some("Throttled"), Failure::Transient),
            (400, Some("KMSThrottling"), Failure::Transient),
            (400, Some("RequestThrottled"), Failure::Transient),
            (400, Some("InvalidParameter"), Failure::Permanent),
            (403, Some("AuthorizationError"), Failure::Permanent),
            (404, Some("NotFound"), Failure::Permanent),
            (
                400,
                Some("AWS.SimpleQueueService.NonExistentQueue"),
                Failure::Permanent,
            ),
            (400, None, Failure::Permanent),
        ];
        for (status, code, expected) in table {
            assert_eq!(
                classify_response(status, code),
                expected,
                "status {status}, code {code:?}"
            );
        }
    }
}
