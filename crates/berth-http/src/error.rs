//! The one place where errors become `/v2` responses: the JSON error body of
//! distribution-spec §Error Codes, with the right status and headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_core::RegistryError;
use berth_oci::{EndpointError, ErrorCode};
use serde_json::json;

use crate::error_chain;
use crate::headers;

/// An error response: status, one error code with message and optional detail, extra headers.
///
/// Body: `{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":{…}}]}` with
/// `Content-Type: application/json`.
#[derive(Debug)]
pub struct ApiError(Box<ApiErrorParts>);

#[derive(Debug)]
struct ApiErrorParts {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    detail: serde_json::Value,
    headers: HeaderMap,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(ApiErrorParts {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: HeaderMap::new(),
        }))
    }

    /// An error with the code's usual status.
    pub fn code(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let status = StatusCode::from_u16(code.default_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, code, message)
    }

    /// Adds a `detail` object.
    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.0.detail = detail;
        self
    }

    /// Adds a response header (ignored if the value is not a valid header value).
    pub fn with_header(mut self, name: &'static str, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.0.headers.insert(HeaderName::from_static(name), value);
        }
        self
    }

    /// A response header set on this error, if any.
    pub fn header(&self, name: &str) -> Option<String> {
        self.0
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The status that will be sent.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }
}

impl From<EndpointError> for ApiError {
    fn from(error: EndpointError) -> Self {
        let (code, status) = error.code_and_status();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, code, error.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let message = error.to_string();
        match &error {
            RegistryError::BlobUnknown { digest, .. } => {
                ApiError::code(ErrorCode::BlobUnknown, message).with_detail(json!({ "digest": digest }))
            }
            RegistryError::UploadUnknown { .. } => ApiError::code(ErrorCode::BlobUploadUnknown, message),
            RegistryError::ChunkOutOfOrder { offset, .. } => {
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::BlobUploadInvalid, message)
                    .with_header("range", &headers::upload_range(*offset))
            }
            RegistryError::ChunkSizeMismatch { offset, .. } => {
                ApiError::code(ErrorCode::SizeInvalid, message).with_header("range", &headers::upload_range(*offset))
            }
            RegistryError::BodyIncomplete { received, .. } => {
                ApiError::code(ErrorCode::BlobUploadInvalid, message).with_detail(json!({ "received": received }))
            }
            RegistryError::DigestMismatch { expected, actual } => ApiError::code(ErrorCode::DigestInvalid, message)
                .with_detail(json!({ "expected": expected, "actual": actual })),
            RegistryError::ManifestUnknown { reference, .. } => {
                ApiError::code(ErrorCode::ManifestUnknown, message).with_detail(json!({ "reference": reference }))
            }
            RegistryError::ManifestInvalid(_) | RegistryError::DescriptorSizeMismatch { .. } => {
                ApiError::code(ErrorCode::ManifestInvalid, message)
            }
            RegistryError::ManifestTooLarge { limit } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::SizeInvalid, message)
                    .with_detail(json!({ "limit": limit }))
            }
            RegistryError::ManifestBlobUnknown { blobs, manifests } => {
                let missing: Vec<String> = blobs.iter().chain(manifests).map(ToString::to_string).collect();
                ApiError::code(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "manifest references content that is not in the repository: {}",
                        missing.join(", ")
                    ),
                )
                .with_detail(json!({ "blobs": blobs, "manifests": manifests }))
            }
            RegistryError::NameUnknown { repository } => {
                ApiError::code(ErrorCode::NameUnknown, message).with_detail(json!({ "name": repository.as_str() }))
            }
            RegistryError::StillReferenced { referenced_by, .. } => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, message)
                    .with_detail(json!({ "referencedBy": referenced_by }))
            }
            RegistryError::TagImmutable { tag, rule, .. } => {
                ApiError::code(ErrorCode::Denied, message).with_detail(json!({ "tag": tag, "rule": rule }))
            }
            RegistryError::QuotaExceeded(refusal) => ApiError::code(ErrorCode::Denied, message).with_detail(json!({
                "project": refusal.project,
                "usageBytes": refusal.usage,
                "limitBytes": refusal.limit,
                "neededBytes": refusal.needed,
            })),
            RegistryError::RangeNotSatisfiable { size } => {
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::BlobUnknown, message)
                    .with_header("content-range", &format!("bytes */{size}"))
            }
            RegistryError::Unsupported(_) => ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, message),
            RegistryError::InvalidPageMarker(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, message)
            }
            RegistryError::StorageFull(_) => {
                tracing::error!(error = %error_chain(&error), "storage is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorCode::Unknown,
                    "storage is full; try again later",
                )
            }
            RegistryError::Storage(_) | RegistryError::Metadata(_) => {
                tracing::error!(error = %error_chain(&error), "internal error");
                ApiError::code(ErrorCode::Unknown, "internal server error; see the registry log")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError(parts) = self;
        let ApiErrorParts {
            status,
            code,
            message,
            detail,
            headers: extra_headers,
        } = *parts;
        let mut entry = json!({ "code": code.as_str(), "message": message });
        if !detail.is_null() {
            entry["detail"] = detail;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.extend(extra_headers);
        response
    }
}
