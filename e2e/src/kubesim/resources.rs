//! The kinds kube-sim serves: the built-in ones Cairn's operator and kubectl use, and those
//! that CustomResourceDefinitions add while it runs.

use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    /// Plural, lower case: the path segment.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    /// A CRD's schema (openAPIV3Schema) and its printer columns; None for built-in kinds.
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    /// Groups of kinds `kubectl get <category>` lists together (a CRD's names.categories).
    pub categories: Vec<String>,
}

impl Resource {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
        short: &[&str],
    ) -> Self {
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced,
            status_subresource: status,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            schema: None,
            printer_columns: Vec::new(),
            categories: Vec::new(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store's name for the kind: `plural.group` (`pods` for the core group).
    pub fn id(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The entry of an APIResourceList.
    pub fn discovery(&self) -> Vec<Value> {
        let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// The built-in kinds (DESIGN §6 and issue 6): what Cairn's operator creates, watches or
/// records, and what kubectl needs to show them.
pub fn builtins() -> Vec<Resource> {
    let b = Resource::builtin;
    vec![
        b("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
        b("", "v1", "nodes", "Node", false, true, &["no"]),
        b("", "v1", "pods", "Pod", true, true, &["po"]),
        b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, true, &["pvc"]),
        b("", "v1", "services", "Service", true, true, &["svc"]),
        b("", "v1", "endpoints", "Endpoints", true, false, &["ep"]),
        b("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
        b("", "v1", "secrets", "Secret", true, false, &[]),
        b("", "v1", "events", "Event", true, false, &["ev"]),
        b("", "v1", "serviceaccounts", "ServiceAccount", true, false, &["sa"]),
        b("events.k8s.io", "v1", "events", "Event", true, false, &["ev"]),
        b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true, &["pdb"]),
        b("coordination.k8s.io", "v1", "leases", "Lease", true, false, &[]),
        b("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, false, &["sc"]),
        b(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
        ),
    ]
}

/// The resources a CRD defines: one per served version.
pub fn from_crd(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let list = |v: &Value| v.as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
    let kind = s(&names["kind"]);
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] == json!(false) {
            continue;
        }
        out.push(Resource {
            group: s(&spec["group"]),
            version: s(&v["name"]),
            plural: s(&names["plural"]),
            singular: names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase()),
            list_kind: names["listKind"].as_str().map(str::to_string).unwrap_or_else(|| format!("{kind}List")),
            kind: kind.clone(),
            namespaced: spec["scope"] == json!("Namespaced"),
            status_subresource: v["subresources"]["status"].is_object(),
            short_names: list(&names["shortNames"]),
            schema: Some(v["schema"]["openAPIV3Schema"].clone()),
            printer_columns: v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
            categories: list(&names["categories"]),
        });
    }
    out
}
