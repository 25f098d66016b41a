//! Defaults the apiserver and its controllers fill in that clients read back: the pod
//! fields kubectl shows, a Service's cluster IP, a claim bound at once (kube-sim's one
//! storage class binds immediately), a Secret's stringData, a CRD's accepted names, and a
//! custom resource's schema defaults.

use super::resources::Resource;
use serde_json::{json, Value};

/// The one simulated node every pod is bound to.
pub const NODE: &str = "kube-sim";

pub fn apply(r: &Resource, obj: &mut Value, creating: bool) {
    match (r.group.as_str(), r.plural.as_str()) {
        ("", "pods") => pod(obj, creating),
        ("", "services") => service(obj, creating),
        ("", "persistentvolumeclaims") => claim(obj, creating),
        ("", "secrets") => secret(obj),
        ("", "namespaces") if creating => obj["status"] = json!({"phase": "Active"}),
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd(obj),
        _ => {}
    }
    if let Some(schema) = &r.schema {
        super::schema::default(schema, obj);
    }
}

fn set_absent(obj: &mut Value, field: &str, v: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = v;
    }
}

fn pod(obj: &mut Value, creating: bool) {
    let spec = &mut obj["spec"];
    set_absent(spec, "restartPolicy", json!("Always"));
    set_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_absent(spec, "schedulerName", json!("default-scheduler"));
    set_absent(spec, "serviceAccountName", json!("default"));
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let latest = c["image"].as_str().is_none_or(|i| !i.contains(':') || i.ends_with(":latest"));
            set_absent(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
            set_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_absent(c, "terminationMessagePolicy", json!("File"));
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                set_absent(p, "protocol", json!("TCP"));
            }
        }
    }
    if creating {
        // Scheduled at once on the one node.
        set_absent(spec, "nodeName", json!(NODE));
        obj["status"] = json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": super::clock::now()}],
            "qosClass": "BestEffort",
        });
    }
}

fn service(obj: &mut Value, creating: bool) {
    let spec = &mut obj["spec"];
    set_absent(spec, "type", json!("ClusterIP"));
    set_absent(spec, "sessionAffinity", json!("None"));
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        set_absent(p, "protocol", json!("TCP"));
        if p.get("targetPort").is_none() {
            p["targetPort"] = p["port"].clone();
        }
    }
    if creating && spec["clusterIP"].is_null() {
        let b: [u8; 2] = rand::random();
        spec["clusterIP"] = json!(format!("10.96.{}.{}", b[0], b[1].max(1)));
    }
    if spec["clusterIPs"].is_null() {
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    if creating {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

fn claim(obj: &mut Value, creating: bool) {
    set_absent(&mut obj["spec"], "volumeMode", json!("Filesystem"));
    set_absent(&mut obj["spec"], "storageClassName", json!("kube-sim"));
    if creating {
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        set_absent(&mut obj["spec"], "volumeName", json!(format!("pvc-{uid}")));
        obj["status"] = json!({
            "phase": "Bound",
            "accessModes": obj["spec"]["accessModes"].clone(),
            "capacity": {"storage": obj["spec"]["resources"]["requests"]["storage"].clone()},
        });
        // As the apiserver's admission adds it: a claim in use by a pod is deleted after it.
        let f = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        if !f.contains(&json!("kubernetes.io/pvc-protection")) {
            let mut f = f;
            f.push(json!("kubernetes.io/pvc-protection"));
            obj["metadata"]["finalizers"] = Value::Array(f);
        }
    }
}

fn secret(obj: &mut Value) {
    set_absent(obj, "type", json!("Opaque"));
    if let Some(Value::Object(plain)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        use base64::Engine;
        for (k, v) in plain {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

fn crd(obj: &mut Value) {
    let mut names = obj["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or_default()));
    }
    obj["spec"]["names"] = names.clone();
    let now = super::clock::now();
    obj["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": obj["spec"]["versions"].as_array().into_iter().flatten()
            .filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
    });
}
