//! The HTTP front: paths to resources, verbs to store operations, query parameters, content
//! types, and errors as Status objects.

use super::errors::{ApiError, Cause};
use super::objects::{self, Part, Propagation};
use super::resources::Resource;
use super::selector::Selector;
use super::store::Key;
use super::watch::WatchRequest;
use super::{discovery, openapi, patch, table, Sim};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn ok(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// What a resource path names.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

pub async fn handle(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(&sim, &method, &uri, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(
    sim: &Arc<Sim>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: Value::Null,
    };
    match segs.as_slice() {
        ["version"] => return Ok(ok(discovery::version())),
        ["healthz"] | ["readyz"] | ["livez"] => return Ok("ok".into_response()),
        ["api"] => return Ok(ok(discovery::core_versions(&sim.address))),
        ["apis"] => return Ok(ok(discovery::group_list(&sim.registry))),
        ["api", v] => return discovery::resource_list(&sim.registry, "", v).map(ok).ok_or_else(not_found),
        ["apis", g] => return discovery::one_group(&sim.registry, g).map(ok).ok_or_else(not_found),
        ["apis", g, v] => return discovery::resource_list(&sim.registry, g, v).map(ok).ok_or_else(not_found),
        ["openapi", "v2"] => {
            return Ok(([("content-type", openapi::V2_CONTENT_TYPE)], Vec::<u8>::new()).into_response())
        }
        ["openapi", "v3"] => return Ok(ok(openapi::v3_root(&sim.registry))),
        ["openapi", "v3", "api", v] => {
            return openapi::v3_group_version(&sim.registry, "", v).map(ok).ok_or_else(not_found)
        }
        ["openapi", "v3", "apis", g, v] => {
            return openapi::v3_group_version(&sim.registry, g, v).map(ok).ok_or_else(not_found)
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let find = |plural: &str| sim.registry.find(group, version, plural);
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) && tail.len() <= 2 => {
            Target {
                resource: find(plural).ok_or_else(not_found)?,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let resource = find(plural).ok_or_else(not_found)?;
            if resource.namespaced && !tail.is_empty() {
                return Err(not_found());
            }
            Target {
                resource,
                namespace: None,
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
            }
        }
        _ => return Err(not_found()),
    };
    let q = query(uri);
    if let Some(sub) = &target.sub {
        if sub == "log" && target.resource.id() == "pods" && method == Method::GET {
            return logs(sim, &target, &q);
        }
        if sub != "status" || !target.resource.status_subresource {
            return Err(not_found());
        }
    }
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    match (method.clone(), target.name.is_some()) {
        (Method::GET, false) => list_or_watch(sim, &target, &q, accept),
        (Method::GET, true) => get(sim, &target, accept, &q),
        (Method::POST, false) => create(sim, &target, &q, body),
        (Method::PUT, true) => update(sim, &target, &q, body),
        (Method::PATCH, true) => patch_object(sim, &target, &q, content_type, body),
        (Method::DELETE, true) => delete(sim, &target, &q, body),
        (Method::DELETE, false) => delete_collection(sim, &target, &q, body),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// `kubectl logs`: what a container wrote, kept per pod name.
fn logs(sim: &Sim, t: &Target, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let pod =
        sim.store.get(&key_of(t)).ok_or_else(|| ApiError::not_found("pods", t.name.as_deref().unwrap_or_default()))?;
    let first = pod["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_string();
    let container = q.get("container").cloned().unwrap_or(first);
    let ns = t.namespace.clone().unwrap_or_default();
    let path = super::kubelet::logs(&sim.state_dir, &ns, t.name.as_deref().unwrap_or_default())
        .join(format!("{container}.log"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("{l}\n")).collect()
        }
        None => text,
    };
    Ok(([("content-type", "text/plain")], text).into_response())
}

fn key_of(t: &Target) -> Key {
    let ns = if t.resource.namespaced { t.namespace.clone().unwrap_or_default() } else { String::new() };
    (t.resource.id(), ns, t.name.clone().unwrap_or_default())
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.starts_with(super::protobuf::MAGIC) {
        return super::protobuf::decode(body);
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice::<Value>(body))
        .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))
}

fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn get(sim: &Sim, t: &Target, accept: &str, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let obj = sim
        .store
        .get(&key_of(t))
        .ok_or_else(|| ApiError::not_found(&t.resource.id(), t.name.as_deref().unwrap_or_default()))?;
    if wants_table(accept) {
        let full = q.get("includeObject").is_some_and(|v| v == "Object");
        return Ok(ok(table::render(&t.resource, &[obj], sim.store.current_rv(), full)));
    }
    Ok(ok(obj))
}

fn selectors(q: &HashMap<String, String>) -> Result<(Selector, Selector), ApiError> {
    let labels = Selector::labels(q.get("labelSelector").map_or("", String::as_str))?;
    let fields = Selector::fields(q.get("fieldSelector").map_or("", String::as_str))?;
    Ok((labels, fields))
}

fn list_or_watch(sim: &Sim, t: &Target, q: &HashMap<String, String>, accept: &str) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q)?;
    let yes = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    if yes("watch") {
        let timeout = q.get("timeoutSeconds").and_then(|s| s.parse().ok()).unwrap_or(1800);
        let w = WatchRequest {
            resource: t.resource.clone(),
            namespace: t.namespace.clone(),
            from: objects::parse_rv(q.get("resourceVersion").map(String::as_str))?,
            labels,
            fields,
            bookmarks: yes("allowWatchBookmarks"),
            timeout: Duration::from_secs(timeout),
            initial_events: yes("sendInitialEvents"),
            table: wants_table(accept).then(|| q.get("includeObject").is_some_and(|v| v == "Object")),
        };
        return super::watch::respond(&sim.store, w);
    }
    let (items, rv) = sim.store.list(&t.resource.id(), t.namespace.as_deref());
    let mut items: Vec<Value> = items.into_iter().filter(|o| labels.matches(o) && fields.matches(o)).collect();
    // Pages: `continue` names the last key served and the version of the first page; later
    // pages come from the current state but report that version, so a watch from it misses
    // nothing (it may repeat what a later page already showed, which watchers take).
    let mut list_rv = rv;
    if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        let (first_rv, after) = token.split_once(':').ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
        list_rv = first_rv.parse().map_err(|_| ApiError::bad_request("invalid continue token"))?;
        if !sim.store.resumable(list_rv) {
            return Err(ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."));
        }
        items.retain(|o| page_key(o).as_str() > after);
    }
    let mut next = None;
    if let Some(limit) = q.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0) {
        if items.len() > limit {
            items.truncate(limit);
            next = items.last().map(|o| format!("{list_rv}:{}", page_key(o)));
        }
    }
    if wants_table(accept) {
        let full = q.get("includeObject").is_some_and(|v| v == "Object");
        return Ok(ok(table::render(&t.resource, &items, list_rv, full)));
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
        meta["remainingItemCount"] = json!(0);
    }
    Ok(ok(
        json!({"kind": t.resource.list_kind, "apiVersion": t.resource.api_version(), "metadata": meta, "items": items}),
    ))
}

/// The order lists come in (namespace, then name): what `continue` resumes after.
fn page_key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Unknown fields of a custom resource are pruned: refused under fieldValidation=Strict,
/// warned about (the returned warnings) under Warn, the default, and silently under Ignore.
fn check_schema(r: &Resource, obj: &mut Value, q: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let Some(schema) = &r.schema else { return Ok(Vec::new()) };
    let mut unknown = Vec::new();
    super::schema::prune(schema, obj, "", &mut unknown);
    let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
    match q.get("fieldValidation").map(String::as_str) {
        Some("Strict") if !list.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            list.join(", "),
            kind = r.kind,
            v = r.version
        ))),
        Some("Ignore") => Ok(Vec::new()),
        _ => Ok(list),
    }
}

/// The object as the answer, with a Warning header for each warning (kubectl prints them).
fn answer(status: axum::http::StatusCode, v: Value, warnings: &[String]) -> Response {
    let mut r = (status, [("content-type", "application/json")], v.to_string()).into_response();
    for w in warnings {
        if let Ok(h) =
            axum::http::HeaderValue::from_str(&format!("299 - {}", serde_json::to_string(w).unwrap_or_default()))
        {
            r.headers_mut().append("warning", h);
        }
    }
    r
}

/// What the apiserver does to a body before storing it: unknown fields pruned (see
/// check_schema), defaults, then the schema's checks. Returns the warnings to send.
fn admit(r: &Resource, obj: &mut Value, q: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let warnings = check_schema(r, obj, q)?;
    if let Some(schema) = &r.schema {
        super::schema::default(schema, obj);
    }
    validate(r, obj)?;
    Ok(warnings)
}

fn validate(r: &Resource, obj: &Value) -> Result<(), ApiError> {
    if r.id() == "customresourcedefinitions.apiextensions.k8s.io" {
        let mut causes = Vec::new();
        for (i, v) in obj["spec"]["versions"].as_array().into_iter().flatten().enumerate() {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            super::schema::structural(&v["schema"]["openAPIV3Schema"], &path, &mut causes);
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&objects::kind_group(r), objects::name_of(obj), causes));
        }
    }
    let Some(schema) = &r.schema else { return Ok(()) };
    let mut causes: Vec<Cause> = Vec::new();
    let mut checked = obj.clone();
    if let Some(m) = checked.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    let mut s = schema.clone();
    if let Some(p) = s["properties"].as_object_mut() {
        p.remove("metadata");
        p.remove("apiVersion");
        p.remove("kind");
    }
    super::schema::validate(&s, &checked, "", &mut causes);
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(&objects::kind_group(r), objects::name_of(obj), causes))
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// Runs a write; a dry run does it all, then throws it away.
fn write(
    sim: &Sim,
    q: &HashMap<String, String>,
    f: impl FnOnce(&mut super::store::Txn<'_>) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    if dry_run(q) {
        let mut out = None;
        let _ = sim.store.write(|t| {
            out = Some(f(t));
            Err::<(), ()>(())
        });
        return out.expect("the transaction ran");
    }
    let v = sim.store.write(f)?;
    sim.after_write();
    Ok(v)
}

fn create(sim: &Sim, t: &Target, q: &HashMap<String, String>, body: &[u8]) -> Result<Response, ApiError> {
    let mut obj = body_json(body)?;
    let warnings = admit(&t.resource, &mut obj, q)?;
    let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
    let r = t.resource.clone();
    let manager = q.get("fieldManager").cloned();
    let obj = write(sim, q, |txn| {
        let mut obj = obj;
        if let Some(m) = &manager {
            super::apply::record_update(&mut obj, None, m, "Update");
        }
        objects::create(txn, &r, &ns, obj)
    })?;
    Ok(answer(axum::http::StatusCode::CREATED, obj, &warnings))
}

fn update(sim: &Sim, t: &Target, q: &HashMap<String, String>, body: &[u8]) -> Result<Response, ApiError> {
    let mut obj = body_json(body)?;
    let warnings = admit(&t.resource, &mut obj, q)?;
    let part = if t.sub.is_some() { Part::Status } else { Part::Main };
    let key = key_of(t);
    let r = t.resource.clone();
    let manager = q.get("fieldManager").cloned();
    let obj = write(sim, q, |txn| {
        let mut obj = obj;
        if let (Some(m), Some(old)) = (&manager, txn.get(&key)) {
            super::apply::record_update(&mut obj, Some(&old), m, "Update");
        }
        objects::update(txn, &r, &key, obj, part)
    })?;
    Ok(answer(axum::http::StatusCode::OK, obj, &warnings))
}

fn patch_object(
    sim: &Sim,
    t: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    let part = if t.sub.is_some() { Part::Status } else { Part::Main };
    let key = key_of(t);
    let r = t.resource.clone();
    let name = t.name.clone().unwrap_or_default();
    let manager = q.get("fieldManager").cloned();
    if ct == "application/apply-patch+yaml" {
        let applied = body_json(body)?;
        let manager =
            manager.ok_or_else(|| ApiError::bad_request("PATCH, fieldManager is required for apply patch"))?;
        let force = q.get("force").is_some_and(|v| v == "true");
        let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
        let obj = write(sim, q, |txn| super::apply::apply(txn, &r, &key, &ns, applied, &manager, force, part))?;
        return Ok(ok(obj));
    }
    let p = body_json(body)?;
    let mut warnings = Vec::new();
    let obj = write(sim, q, |txn| {
        let old = txn.get(&key).ok_or_else(|| ApiError::not_found(&r.id(), &name))?;
        let mut new = old.clone();
        match ct {
            "application/merge-patch+json" => patch::merge(&mut new, &p),
            "application/json-patch+json" => patch::json_patch(&mut new, &p)?,
            "application/strategic-merge-patch+json" if r.schema.is_none() => patch::strategic(&mut new, &p)?,
            "application/strategic-merge-patch+json" => {
                return Err(ApiError::unsupported_media_type(
                    "strategic merge patch is not supported for custom resources",
                ))
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        // A patch that does not name a version does not check it.
        if p["metadata"]["resourceVersion"].is_null() {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        warnings = admit(&r, &mut new, q)?;
        if let Some(m) = &manager {
            super::apply::record_update(&mut new, Some(&old), m, "Update");
        }
        objects::update(txn, &r, &key, new, part)
    })?;
    Ok(answer(axum::http::StatusCode::OK, obj, &warnings))
}

/// DeleteOptions from the query and the body.
struct DeleteOptions {
    propagation: Propagation,
    grace: Option<i64>,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let opts: Value = if body.is_empty() { Value::Null } else { body_json(body)? };
    let policy = q.get("propagationPolicy").cloned().or_else(|| opts["propagationPolicy"].as_str().map(str::to_string));
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => return Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: \"{other}\""))),
    };
    let orphan = q.get("orphanDependents").is_some_and(|v| v == "true") || opts["orphanDependents"] == json!(true);
    let propagation = if orphan { Propagation::Orphan } else { propagation };
    let grace =
        q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()).or_else(|| opts["gracePeriodSeconds"].as_i64());
    let uid = opts["preconditions"]["uid"].as_str().map(str::to_string);
    let rv = opts["preconditions"]["resourceVersion"].as_str().map(str::to_string);
    Ok(DeleteOptions { propagation, grace, uid, rv })
}

fn delete(sim: &Sim, t: &Target, q: &HashMap<String, String>, body: &[u8]) -> Result<Response, ApiError> {
    let o = delete_options(q, body)?;
    let key = key_of(t);
    let r = t.resource.clone();
    let obj =
        write(sim, q, |txn| objects::delete(txn, &r, &key, o.propagation, o.grace, o.uid.as_deref(), o.rv.as_deref()))?;
    Ok(ok(obj))
}

fn delete_collection(sim: &Sim, t: &Target, q: &HashMap<String, String>, body: &[u8]) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q)?;
    let DeleteOptions { propagation, grace, .. } = delete_options(q, body)?;
    let r = t.resource.clone();
    let ns = t.namespace.clone();
    let deleted = write(sim, q, |txn| {
        let mut out = Vec::new();
        for (key, obj) in txn.list(&r.id(), ns.as_deref()) {
            if labels.matches(&obj) && fields.matches(&obj) {
                out.push(objects::delete(txn, &r, &key, propagation, grace, None, None)?);
            }
        }
        Ok(Value::Array(out))
    })?;
    Ok(ok(json!({"kind": r.list_kind, "apiVersion": r.api_version(), "metadata": {}, "items": deleted})))
}
