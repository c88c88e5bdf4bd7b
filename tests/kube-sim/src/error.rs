//! API errors: the failures a request can meet, rendered as the `Status` objects (reason, code,
//! message, details with causes) that a real kube-apiserver returns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One cause of an `Invalid` error: a field path, a reason and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The field, as `spec.replicas` (no leading dot).
    pub field: String,
    /// The message without the field, as `Invalid value: 10: ...`.
    pub message: String,
}

impl Cause {
    /// `FieldValueInvalid`: `Invalid value: <value>: <detail>`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: {}: {detail}", show_value(value)),
        }
    }

    /// `FieldValueRequired`: `Required value`.
    pub fn required(field: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.to_string(),
            message: "Required value".to_string(),
        }
    }

    /// `FieldValueNotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(show_value).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                show_value(value),
                list.join(", ")
            ),
        }
    }

    /// A cause with an arbitrary reason and message.
    pub fn other(reason: &'static str, field: &str, message: String) -> Self {
        Cause {
            reason,
            field: field.to_string(),
            message,
        }
    }

    /// `field: message`, as the API server joins them.
    pub fn render(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// How the API server shows a value in a field error: strings quoted, numbers bare, objects
/// and arrays by their type name.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

/// Identifies the object an error is about: `group`, plural `resource` and `name`.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name, or the kind for `Invalid` errors.
    pub resource: String,
    /// Object name.
    pub name: String,
}

impl Subject {
    /// `resource.group` (or `resource` for the core group), as messages print it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// Every error the API layer answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound.
    #[error("{} {:?} not found", .0.qualified(), .0.name)]
    NotFound(Subject),
    /// 404 NotFound for a path that names no resource.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 AlreadyExists.
    #[error("{} {:?} already exists", .0.qualified(), .0.name)]
    AlreadyExists(Subject),
    /// 409 Conflict (stale resourceVersion, or a precondition).
    #[error("Operation cannot be fulfilled on {} {:?}: {}", .0.qualified(), .0.name, .1)]
    Conflict(Subject, String),
    /// 422 Invalid; the subject's `resource` holds the kind.
    #[error("{} {:?} is invalid: {}", .0.qualified(), .0.name, render_causes(.1))]
    Invalid(Subject, Vec<Cause>),
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 403 Forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 410 Gone (Expired).
    #[error("{0}")]
    Gone(String),
    /// 415 UnsupportedMediaType.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn render_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.render(),
        many => format!(
            "[{}]",
            many.iter()
                .map(Cause::render)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound(_) | ApiError::NoRoute => 404,
            ApiError::AlreadyExists(_) | ApiError::Conflict(..) => 409,
            ApiError::Invalid(..) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::MethodNotAllowed => 405,
            ApiError::Gone(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `reason` of the Status.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict(..) => "Conflict",
            ApiError::Invalid(..) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Gone(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The error as a `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound(s) | ApiError::AlreadyExists(s) | ApiError::Conflict(s, _) => {
                Some(json!({"name": s.name, "group": s.group, "kind": s.resource}))
            }
            ApiError::Invalid(s, causes) => Some(json!({
                "name": s.name,
                "group": s.group,
                "kind": s.resource,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::http::json_response(code, &self.to_status())
    }
}

/// Result of the API layer.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_the_api_server() {
        let subject = Subject {
            group: "kvstore.io".into(),
            resource: "KVCluster".into(),
            name: "x".into(),
        };
        let cause = Cause::invalid(
            "spec.replicas",
            &json!(10),
            "spec.replicas in body should be less than or equal to 9",
        );
        let err = ApiError::Invalid(subject, vec![cause]);
        assert_eq!(
            err.to_string(),
            "KVCluster.kvstore.io \"x\" is invalid: spec.replicas: Invalid value: 10: \
             spec.replicas in body should be less than or equal to 9"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["field"],
            "spec.replicas"
        );
    }

    #[test]
    fn not_found_names_the_resource() {
        let s = Subject {
            group: String::new(),
            resource: "pods".into(),
            name: "p".into(),
        };
        assert_eq!(ApiError::NotFound(s).to_string(), "pods \"p\" not found");
    }
}
