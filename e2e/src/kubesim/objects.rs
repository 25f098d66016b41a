//! What the apiserver does to an object on its way in: metadata it owns (uid,
//! creationTimestamp, resourceVersion, generation), optimistic concurrency, the status
//! subresource split, finalizers and deletionTimestamp, and the defaults of the built-in
//! kinds that Cairn's operator and kubectl read back.

use super::clock::now;
use super::errors::ApiError;
use super::resources::Resource;
use super::store::{Key, Txn};
use serde_json::{json, Map, Value};

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// What a spec change is measured on: everything but metadata and status.
fn spec_part(r: &Resource, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if r.status_subresource {
            m.remove("status");
        }
    }
    v
}

fn check_identity(r: &Resource, obj: &Value) -> Result<(), ApiError> {
    if let Some(kind) = obj["kind"].as_str() {
        if kind != r.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the body ({kind}) does not match the resource ({})",
                r.kind
            )));
        }
    }
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body is not an object"));
    }
    Ok(())
}

/// The DNS-1123 subdomain rule most names follow.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub fn kind_group(r: &Resource) -> String {
    if r.group.is_empty() {
        r.kind.clone()
    } else {
        format!("{}.{}", r.kind, r.group)
    }
}

/// Creates `obj` in `namespace`; returns it as stored.
pub fn create(t: &mut Txn<'_>, r: &Resource, namespace: &str, mut obj: Value) -> Result<Value, ApiError> {
    check_identity(r, &obj)?;
    let meta = obj["metadata"].as_object().cloned().unwrap_or_default();
    let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
            let suffix: String =
                (0..5).map(|_| b"bcdfghjklmnpqrstvwxz2456789"[rand::random::<usize>() % 27] as char).collect();
            name = format!("{prefix}{suffix}");
        }
    }
    if name.is_empty() {
        let cause = super::errors::Cause {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            value: None,
            detail: String::new(),
        };
        return Err(ApiError::invalid(&kind_group(r), "", vec![cause]));
    }
    if !valid_name(&name) {
        let cause = super::errors::Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            value: Some(Value::String(name.clone())),
            detail: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into(),
        };
        return Err(ApiError::invalid(&kind_group(r), &name, vec![cause]));
    }
    if r.namespaced {
        if let Some(ns) = meta.get("namespace").and_then(Value::as_str).filter(|ns| !ns.is_empty()) {
            if ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let ns_key = ("namespaces".to_string(), String::new(), namespace.to_string());
        match t.get(&ns_key) {
            None => return Err(ApiError::not_found("namespaces", namespace)),
            Some(ns) if !ns["metadata"]["deletionTimestamp"].is_null() => {
                return Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: format!("{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated", r.id()),
                    details: Value::Null,
                })
            }
            Some(ns) if r.id() == "pods" => {
                obj["metadata"]["name"] = Value::String(name.clone());
                super::pod_security::admit(&ns, &obj)?;
            }
            Some(_) => {}
        }
    }
    let key: Key = (r.id(), if r.namespaced { namespace.into() } else { String::new() }, name.clone());
    if t.get(&key).is_some() {
        return Err(ApiError::already_exists(&r.id(), &name));
    }
    let m = obj["metadata"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut m: Map<String, Value> = m;
    m.insert("name".into(), Value::String(name));
    if r.namespaced {
        m.insert("namespace".into(), Value::String(namespace.into()));
    } else {
        m.remove("namespace");
    }
    m.insert("uid".into(), Value::String(new_uid()));
    m.insert("creationTimestamp".into(), Value::String(now()));
    m.insert("generation".into(), json!(1));
    m.remove("deletionTimestamp");
    m.remove("resourceVersion");
    obj["metadata"] = Value::Object(m);
    obj["apiVersion"] = Value::String(r.api_version());
    obj["kind"] = Value::String(r.kind.clone());
    super::defaults::apply(r, &mut obj, true);
    t.put(key, obj.clone());
    obj["metadata"]["resourceVersion"] = Value::String(t.written_rv().to_string());
    Ok(obj)
}

/// Which part of the object a write may change.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Part {
    /// The main resource: status stays as it was when the kind has a status subresource.
    Main,
    /// The status subresource: only status changes.
    Status,
}

/// Replaces the object at `key` with `new` (a full object, as PUT sends and patches make).
/// `new`'s resourceVersion, when set, must be the current one.
pub fn update(t: &mut Txn<'_>, r: &Resource, key: &Key, mut new: Value, part: Part) -> Result<Value, ApiError> {
    check_identity(r, &new)?;
    let old = t.get(key).ok_or_else(|| ApiError::not_found(&r.id(), &key.2))?;
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str() {
        if !rv.is_empty() && rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(ApiError::modified(&r.id(), &key.2));
        }
    }
    if let Some(name) = new["metadata"]["name"].as_str() {
        if name != key.2 {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.2
            )));
        }
    }
    match part {
        Part::Status => {
            // Only status is taken from the request.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        Part::Main if r.status_subresource => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        },
        Part::Main => {}
    }
    // Metadata the server owns stays as it was.
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(field));
            }
        }
    }
    new["apiVersion"] = Value::String(r.api_version());
    new["kind"] = Value::String(r.kind.clone());
    super::defaults::apply(r, &mut new, false);
    if spec_part(r, &new) != spec_part(r, &old) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if new == without_rv(&old) || new == old {
        // Nothing changed: no new version, no event.
        return Ok(old);
    }
    // A deleted object whose last finalizer went is gone.
    let finalizers_left = new["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if !new["metadata"]["deletionTimestamp"].is_null() && !finalizers_left {
        t.delete(key.clone());
        new["metadata"]["resourceVersion"] = Value::String(t.written_rv().to_string());
        return Ok(new);
    }
    t.put(key.clone(), new.clone());
    new["metadata"]["resourceVersion"] = Value::String(t.written_rv().to_string());
    Ok(new)
}

fn without_rv(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    v
}

/// How dependents go when their owner is deleted.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Deletes the object at `key`: at once when nothing holds it, else it is marked
/// (deletionTimestamp) and stays until its finalizers are removed. Pods are ended by the
/// kubelet first unless the grace period is 0.
pub fn delete(
    t: &mut Txn<'_>,
    r: &Resource,
    key: &Key,
    propagation: Propagation,
    grace: Option<i64>,
    precondition_uid: Option<&str>,
    precondition_rv: Option<&str>,
) -> Result<Value, ApiError> {
    let mut obj = t.get(key).ok_or_else(|| ApiError::not_found(&r.id(), &key.2))?;
    if let Some(uid) = precondition_uid {
        if obj["metadata"]["uid"].as_str() != Some(uid) {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                obj["metadata"]["uid"].as_str().unwrap_or_default()
            );
            return Err(ApiError::conflict(&r.id(), &key.2, &why));
        }
    }
    if let Some(rv) = precondition_rv {
        if obj["metadata"]["resourceVersion"].as_str() != Some(rv) {
            let why = format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                obj["metadata"]["resourceVersion"].as_str().unwrap_or_default()
            );
            return Err(ApiError::conflict(&r.id(), &key.2, &why));
        }
    }
    let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    let mut hold = !finalizers.is_empty();
    match propagation {
        Propagation::Foreground => {
            if !finalizers.contains(&json!("foregroundDeletion")) {
                finalizers.push(json!("foregroundDeletion"));
            }
            hold = true;
        }
        Propagation::Orphan => {
            // Dependents lose their reference to it now, rather than through an orphan finalizer.
            if let Some(uid) = obj["metadata"]["uid"].as_str().map(str::to_string) {
                orphan_dependents(t, &uid);
            }
        }
        Propagation::Background => {}
    }
    let graceful_pod = r.id() == "pods" && grace != Some(0) && obj["spec"]["nodeName"].is_string();
    if r.id() == "namespaces" {
        // The namespace controller empties it first (see gc).
        hold = true;
        obj["status"]["phase"] = json!("Terminating");
        if !finalizers.contains(&json!("kubernetes")) && obj["spec"]["finalizers"].is_null() {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
    }
    if !hold && !graceful_pod {
        t.delete(key.clone());
        obj["metadata"]["resourceVersion"] = Value::String(t.written_rv().to_string());
        return Ok(obj);
    }
    if obj["metadata"]["deletionTimestamp"].is_null() {
        obj["metadata"]["deletionTimestamp"] = Value::String(now());
        let seconds = if graceful_pod {
            grace.or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30)
        } else {
            0
        };
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(seconds);
    } else if graceful_pod && grace.is_some() {
        // A second delete may shorten the grace period, never lengthen it.
        let old = obj["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(30);
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(old.min(grace.unwrap_or(old)));
    }
    if !finalizers.is_empty() {
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    t.put(key.clone(), obj.clone());
    obj["metadata"]["resourceVersion"] = Value::String(t.written_rv().to_string());
    Ok(obj)
}

/// Removes every reference to `owner_uid` from the objects that carry one.
pub fn orphan_dependents(t: &mut Txn<'_>, owner_uid: &str) {
    for (key, mut obj) in t.list_all() {
        let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else { continue };
        if !refs.iter().any(|o| o["uid"].as_str() == Some(owner_uid)) {
            continue;
        }
        let kept: Vec<Value> = refs.iter().filter(|o| o["uid"].as_str() != Some(owner_uid)).cloned().collect();
        if kept.is_empty() {
            obj["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
        } else {
            obj["metadata"]["ownerReferences"] = Value::Array(kept);
        }
        t.put(key, obj);
    }
}

/// The resourceVersion a request asks to start from ("" or "0": any).
pub fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(u, new_uid());
    }
}
