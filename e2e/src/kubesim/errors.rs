//! API errors as the apiserver answers them: a `Status` object with its HTTP code, reason
//! and message, which kubectl prints and kube-rs turns into `ErrorResponse`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Value) -> ApiError {
        ApiError { code, reason, message, details }
    }

    /// `pods "x" not found`; `what` is the resource (with its group: `cairnclusters.cairn.dev`).
    pub fn not_found(what: &str, name: &str) -> ApiError {
        let (kind, group) = split(what);
        Self::new(
            404,
            "NotFound",
            format!("{what} \"{name}\" not found"),
            json!({"name": name, "group": group, "kind": kind}),
        )
    }

    pub fn already_exists(what: &str, name: &str) -> ApiError {
        let (kind, group) = split(what);
        Self::new(
            409,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
            json!({"name": name, "group": group, "kind": kind}),
        )
    }

    /// A stale resourceVersion or UID precondition.
    pub fn conflict(what: &str, name: &str, why: &str) -> ApiError {
        let (kind, group) = split(what);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {what} \"{name}\": {why}"),
            json!({"name": name, "group": group, "kind": kind}),
        )
    }

    pub fn modified(what: &str, name: &str) -> ApiError {
        Self::conflict(
            what,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes: `CairnCluster.cairn.dev "x" is invalid: spec.replicas: Invalid value: ...`.
    pub fn invalid(kind_group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let text: Vec<String> = causes.iter().map(Cause::text).collect();
        let message = match text.len() {
            1 => format!("{kind_group} \"{name}\" is invalid: {}", text[0]),
            _ => format!("{kind_group} \"{name}\" is invalid: [{}]", text.join(", ")),
        };
        let (kind, group) = split(kind_group);
        let causes: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message(), "field": c.field})).collect();
        Self::new(422, "Invalid", message, json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(400, "BadRequest", message.into(), Value::Null)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        Self::new(405, "MethodNotAllowed", message.into(), Value::Null)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"), Value::Null)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        Self::new(410, "Expired", message.into(), Value::Null)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        s
    }
}

fn split(what: &str) -> (&str, &str) {
    what.split_once('.').unwrap_or((what, ""))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, [("content-type", "application/json")], self.status().to_string()).into_response()
    }
}

/// One reason a field is invalid, as in a 422's details.causes.
#[derive(Debug, Clone)]
pub struct Cause {
    /// FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid...
    pub reason: &'static str,
    pub field: String,
    /// The offending value, as printed after "Invalid value:" (None: not shown).
    pub value: Option<Value>,
    pub detail: String,
}

impl Cause {
    fn message(&self) -> String {
        match self.reason {
            "FieldValueRequired" if self.detail.is_empty() => "Required value".to_string(),
            "FieldValueRequired" => format!("Required value: {}", self.detail),
            _ => match &self.value {
                Some(v) => format!("{}: {}: {}", reason_text(self.reason), v, self.detail),
                None => format!("{}: {}", reason_text(self.reason), self.detail),
            },
        }
    }

    fn text(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }
}

fn reason_text(reason: &str) -> &'static str {
    match reason {
        "FieldValueNotSupported" => "Unsupported value",
        "FieldValueTypeInvalid" => "Invalid value",
        "FieldValueForbidden" => "Forbidden",
        "FieldValueTooLong" => "Too long",
        _ => "Invalid value",
    }
}
