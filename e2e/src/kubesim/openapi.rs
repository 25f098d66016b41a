//! Just enough OpenAPI for kubectl: `apply` and `create -f` download /openapi/v2 for their
//! client-side checks (an empty document: no kind is described, so none is checked on the
//! client) and read /openapi/v3 to learn that the server validates fields itself (each
//! kind's PATCH operation takes `fieldValidation`), so kubectl sends fieldValidation=Strict
//! and unknown fields of custom resources are refused, as on a real cluster.

use super::registry::Registry;
use super::resources::Resource;
use serde_json::{json, Map, Value};

/// An empty gnostic openapi_v2.Document in protobuf: zero bytes.
pub const V2_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn v3_root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for v in versions {
            let p = gv_path(&group, &v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}")}));
        }
    }
    json!({"paths": paths})
}

fn patch_op(r: &Resource) -> Value {
    json!({
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ],
        "requestBody": {"content": {"application/json-patch+json": {}, "application/merge-patch+json": {}, "application/apply-patch+yaml": {}}},
        "responses": {"200": {"description": "OK"}},
    })
}

/// The OpenAPI v3 document of one group version, None when nothing is served there.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    for r in reg.all().into_iter().filter(|r| r.group == group && r.version == version) {
        let base = format!("/{}", gv_path(group, version));
        let object = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(object, json!({"patch": patch_op(&r)}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
