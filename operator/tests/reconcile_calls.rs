//! The reconciler against a mocked API server (tower-test): the calls one reconcile of a new
//! CairnCluster makes, in order, and what they carry. With no member answering, the step is
//! the bootstrap: Services, PDB and ConfigMap applied, pods and claims listed, a claim and a
//! pod created per founder, the status written, an Event published.

use cairn_operator::controller::{reconcile_cluster, Ctx};
use cairn_operator::crd::CairnCluster;
use cairn_operator::metrics::Metrics;
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::sync::Arc;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Takes the next request, checks its method and path, answers `reply(body)`.
async fn expect(handle: &mut Handle, method: Method, path: &str, reply: impl FnOnce(&Value) -> Value) -> Value {
    let (req, send) = handle.next_request().await.unwrap_or_else(|| panic!("no request; expected {method} {path}"));
    assert_eq!((req.method(), req.uri().path()), (&method, path), "{}", req.uri());
    let query = req.uri().query().unwrap_or_default().to_string();
    let bytes = req.into_body().collect_bytes().await.expect("a body");
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") };
    let answer = reply(&body);
    send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&answer).unwrap())).unwrap());
    json!({"query": query, "body": body})
}

fn list(kind: &str) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
}

#[tokio::test]
async fn a_new_cluster_is_bootstrapped_with_these_calls() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let mut c: CairnCluster = serde_json::from_value(json!({
        "apiVersion": "cairn.dev/v1alpha1", "kind": "CairnCluster",
        "metadata": {"name": "demo", "namespace": "default", "uid": "u-1", "generation": 1},
        "spec": {"replicas": 3}
    }))
    .unwrap();
    c.metadata.resource_version = Some("7".into());
    let cluster = serde_json::to_value(&c).unwrap();
    let ctx = Arc::new(Ctx::new(client, Arc::new(Metrics::default())));
    let reconcile = tokio::spawn(reconcile_cluster(Arc::new(c), ctx));
    let echo = |b: &Value| b.clone();
    let ns = "/api/v1/namespaces/default";
    let peer = expect(&mut handle, Method::PATCH, &format!("{ns}/services/demo-peer"), echo).await;
    assert!(peer["query"].as_str().unwrap().contains("fieldManager=cairn-operator"), "server-side apply: {peer}");
    assert_eq!(peer["body"]["spec"]["clusterIP"], "None");
    expect(&mut handle, Method::PATCH, &format!("{ns}/services/demo"), echo).await;
    let pdb =
        expect(&mut handle, Method::PATCH, "/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo", echo).await;
    assert_eq!(pdb["body"]["spec"]["minAvailable"], 2);
    expect(&mut handle, Method::PATCH, &format!("{ns}/configmaps/demo-config"), echo).await;
    let pods = expect(&mut handle, Method::GET, &format!("{ns}/pods"), |_| list("PodList")).await;
    assert!(pods["query"].as_str().unwrap().contains("app.kubernetes.io%2Finstance%3Ddemo"), "{pods}");
    expect(&mut handle, Method::GET, &format!("{ns}/persistentvolumeclaims"), |_| list("PersistentVolumeClaimList"))
        .await;
    for i in 0..3 {
        let claim = expect(&mut handle, Method::POST, &format!("{ns}/persistentvolumeclaims"), echo).await;
        assert_eq!(claim["body"]["metadata"]["name"], format!("demo-{i}"));
        let pod = expect(&mut handle, Method::POST, &format!("{ns}/pods"), echo).await;
        let args = pod["body"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--initial-cluster-state=new"), "{args}");
        assert!(args.contains("demo-0=http://demo-0.demo-peer.default.svc.cluster.local:2380,demo-1="), "{args}");
        assert_eq!(pod["body"]["metadata"]["ownerReferences"][0]["uid"], "u-1");
    }
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/cairn.dev/v1alpha1/namespaces/default/cairnclusters/demo/status",
        |_| cluster.clone(),
    )
    .await;
    assert_eq!(status["body"]["status"]["phase"], "Creating");
    assert_eq!(status["body"]["status"]["conditions"][0]["type"], "Available");
    assert_eq!(status["body"]["status"]["conditions"][0]["status"], "False");
    let event = expect(&mut handle, Method::POST, "/apis/events.k8s.io/v1/namespaces/default/events", echo).await;
    assert_eq!(event["body"]["reason"], "Bootstrap");
    let action = reconcile.await.expect("no panic").expect("the reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_millis(500)));
}
