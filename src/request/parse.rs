//! The classifier itself. Owned by the request-classifier work; see `mod.rs` for the types.

use super::ApiRequest;
use http::Method;

/// Why a request line could not be classified. Becomes a 400 `Status` (client fault).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    #[error("malformed request path: {0}")]
    Path(String),
    #[error("malformed query parameter {name}: {why}")]
    Query { name: &'static str, why: String },
}

/// Classify a request from its method, path and raw query string (without the `?`).
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<ApiRequest, ClassifyError> {
    let _ = (method, path, query);
    Err(ClassifyError::Path("classifier not written yet".into()))
}
