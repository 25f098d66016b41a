//! kube-sim through kube-rs, the client Cairn's operator is built on: the kubeconfig it
//! writes, discovery, typed CRUD, server-side apply with its conflicts, error responses, and
//! the runtime's watcher (paged lists, then a watch) seeing every change.

use cairn_e2e::sim::KubeSim;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Config};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

async fn client(sim: &KubeSim) -> Client {
    let kc = Kubeconfig::read_from(&sim.kubeconfig).expect("kube-sim's kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("a config");
    Client::try_from(config).expect("a client")
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).expect("a ConfigMap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_discovers_reads_writes_applies_and_watches() {
    let sim = KubeSim::start(&[]);
    let client = client(&sim).await;
    let discovery = kube::Discovery::new(client.clone()).run().await.expect("discovery");
    assert!(discovery.groups().any(|g| g.name() == "coordination.k8s.io"));
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("pre-{i}"), "x")).await.expect("create");
    }
    // Pages of two, then a watch from the list's version.
    let config = watcher::Config::default().page_size(2);
    let mut seen = watcher(cms.clone(), config).applied_objects().boxed();
    let mut names = BTreeSet::new();
    while names.len() < 5 {
        let o = tokio::time::timeout(Duration::from_secs(10), seen.next())
            .await
            .expect("events")
            .expect("a stream")
            .expect("an object");
        names.insert(o.metadata.name.unwrap());
    }
    cms.create(&PostParams::default(), &cm("live", "1")).await.expect("create");
    let o = tokio::time::timeout(Duration::from_secs(10), seen.next()).await.expect("an event").unwrap().unwrap();
    assert_eq!(o.metadata.name.as_deref(), Some("live"));
    // Server-side apply: ownership and conflicts.
    let apply = |manager: &str, force: bool| {
        let mut p = PatchParams::apply(manager);
        p.force = force;
        p
    };
    let doc =
        |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"v": v}});
    cms.patch("owned", &apply("operator", false), &Patch::Apply(doc("1"))).await.expect("apply creates");
    let err = cms.patch("owned", &apply("intruder", false), &Patch::Apply(doc("2"))).await.unwrap_err();
    match err {
        kube::Error::Api(e) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{}", e.message),
        other => panic!("not a conflict: {other}"),
    }
    cms.patch("owned", &apply("intruder", true), &Patch::Apply(doc("2"))).await.expect("forced");
    assert_eq!(cms.get("owned").await.unwrap().data.unwrap()["v"], "2");
    // Errors come back as the apiserver's.
    match cms.get("nothing").await.unwrap_err() {
        kube::Error::Api(e) => assert_eq!((e.code, e.reason.as_str()), (404, "NotFound")),
        other => panic!("not a 404: {other}"),
    }
    let mut stale = cms.get("live").await.unwrap();
    cms.patch("live", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await.unwrap();
    stale.data = Some([("v".to_string(), "3".to_string())].into());
    match cms.replace("live", &PostParams::default(), &stale).await.unwrap_err() {
        kube::Error::Api(e) => assert_eq!(e.code, 409),
        other => panic!("not a conflict: {other}"),
    }
    cms.delete("live", &DeleteParams::default()).await.expect("delete");
    assert!(cms.get_opt("live").await.unwrap().is_none());
}
