//! kubectl's typed commands (`create secret generic`, `create configmap`, `create
//! namespace`) send Kubernetes' protobuf encoding, not JSON: the bytes `k8s\0`, then a
//! runtime.Unknown wrapping the object. kube-sim reads those few kinds (their field numbers
//! are the k8s.io/api generated.proto ones) into JSON; others get 415, and every answer is
//! JSON, which clients accept whatever they sent.

use super::errors::ApiError;
use base64::Engine;
use serde_json::{json, Map, Value};

pub const MAGIC: &[u8] = b"k8s\0";

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(b: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let tag = varint(b, &mut pos)?;
        let value = match tag & 7 {
            0 => Wire::Varint(varint(b, &mut pos)?),
            2 => {
                let len = varint(b, &mut pos)? as usize;
                let v = b.get(pos..pos + len)?;
                pos += len;
                Wire::Bytes(v)
            }
            1 => {
                pos += 8;
                continue;
            }
            5 => {
                pos += 4;
                continue;
            }
            _ => return None,
        };
        out.push((tag >> 3, value));
    }
    Some(out)
}

fn text(w: &Wire<'_>) -> String {
    match w {
        Wire::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Wire::Varint(v) => v.to_string(),
    }
}

/// A map<string, string|bytes> entry: (key = 1, value = 2).
fn entry(w: &Wire<'_>) -> Option<(String, Vec<u8>)> {
    let Wire::Bytes(b) = w else { return None };
    let mut k = String::new();
    let mut v = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, f) => k = text(&f),
            (2, Wire::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Some((k, v))
}

fn meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    // gogo-protobuf writes empty optional strings too: absent, for JSON.
    for (n, f) in fields(b)?.into_iter().filter(|(_, f)| !matches!(f, Wire::Bytes(b) if b.is_empty())) {
        match n {
            1 => drop(m.insert("name".into(), json!(text(&f)))),
            2 => drop(m.insert("generateName".into(), json!(text(&f)))),
            3 => drop(m.insert("namespace".into(), json!(text(&f)))),
            6 => drop(m.insert("resourceVersion".into(), json!(text(&f)))),
            11 => {
                let (k, v) = entry(&f)?;
                labels.insert(k, json!(String::from_utf8_lossy(&v)));
            }
            12 => {
                let (k, v) = entry(&f)?;
                annotations.insert(k, json!(String::from_utf8_lossy(&v)));
            }
            14 => finalizers.push(json!(text(&f))),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

fn object(kind: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = json!({"kind": kind});
    let b64 = |v: &[u8]| json!(base64::engine::general_purpose::STANDARD.encode(v));
    for (n, f) in fields(raw)? {
        let Wire::Bytes(b) = &f else {
            if (kind, n) == ("Secret", 5) || (kind, n) == ("ConfigMap", 4) {
                obj["immutable"] = json!(matches!(f, Wire::Varint(1)));
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => obj["metadata"] = meta(b)?,
            ("Secret", 2) => {
                let (k, v) = entry(&f)?;
                obj["data"][k] = b64(&v);
            }
            ("Secret", 3) if !b.is_empty() => obj["type"] = json!(text(&f)),
            ("Secret", 4) | ("ConfigMap", 2) => {
                let (k, v) = entry(&f)?;
                let field = if kind == "Secret" { "stringData" } else { "data" };
                obj[field][k] = json!(String::from_utf8_lossy(&v));
            }
            ("ConfigMap", 3) => {
                let (k, v) = entry(&f)?;
                obj["binaryData"][k] = b64(&v);
            }
            _ => {}
        }
    }
    Some(obj)
}

/// The JSON of a protobuf-encoded request body.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = || ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf");
    let b = body.strip_prefix(MAGIC).ok_or_else(unsupported)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(b).ok_or_else(unsupported)? {
        match (n, &f) {
            (1, Wire::Bytes(tm)) => {
                for (m, g) in fields(tm).ok_or_else(unsupported)? {
                    match m {
                        1 => api_version = text(&g),
                        2 => kind = text(&g),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    if !["Secret", "ConfigMap", "Namespace", "ServiceAccount"].contains(&kind.as_str()) {
        return Err(unsupported());
    }
    let mut obj = object(&kind, raw).ok_or_else(unsupported)?;
    obj["apiVersion"] = json!(api_version);
    Ok(obj)
}
