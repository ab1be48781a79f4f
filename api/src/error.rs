//! Errors: [`ApiError`] is what a client receives, [`Error`] what stops an instance.

use hyper::StatusCode;

/// Errors that stop an API instance from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] aurora_common::Error),
    #[error(transparent)]
    Producer(#[from] aurora_producer::Error),
    #[error("serving HTTP failed")]
    Io(#[from] std::io::Error),
}

/// Error response: HTTP status, a stable code and a message that tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with the given code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a resource the caller cannot see, whether or not it exists.
    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} {id:?} was not found"),
        )
    }

    /// Returns 503 after the broker failed to acknowledge or respond, so the request may be retried.
    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "A broker request of the API failed.");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            "the broker did not acknowledge the request in time; retry it",
        )
    }
}

impl ApiError {
    /// 500 for a failure that is not the client's and not the broker's, such as a stored
    /// secret that no longer opens. The cause is logged, not sent.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "An API request failed inside the server.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; see its log",
        )
    }
}

impl From<aurora_common::Error> for ApiError {
    fn from(error: aurora_common::Error) -> Self {
        ApiError::unavailable(&error)
    }
}

impl From<aurora_common::produce::ProduceError> for ApiError {
    fn from(error: aurora_common::produce::ProduceError) -> Self {
        ApiError::unavailable(&error)
    }
}
