//! How a handler fails, in the terms Lambda and Step Functions use.

use tributary_core::error::UseCaseError;

/// A handler failure as Lambda reports it: `error_type` is what Step
/// Functions matches in `Retry`/`Catch` (`Tributary.Retryable`, ...).
#[derive(Debug, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct HandlerError {
    pub error_type: String,
    pub message: String,
    pub retryable: bool,
}

impl From<UseCaseError> for HandlerError {
    fn from(e: UseCaseError) -> Self {
        HandlerError {
            error_type: e.error_name().to_string(),
            message: e.to_string(),
            retryable: e.retryable(),
        }
    }
}

/// An event the function cannot use: retrying the same event cannot help.
pub fn bad_event(message: String) -> HandlerError {
    HandlerError {
        error_type: "Tributary.BadEvent".into(),
        message,
        retryable: false,
    }
}
