//! kube-sim itself, through kubectl 1.32 as a user drives it: the API semantics Cairn's
//! operator relies on (metadata, optimistic concurrency, watches, garbage collection and
//! finalizers, every patch type, server-side apply, CRD validation with CEL).

use cairn_e2e::sim::KubeSim;
use serde_json::{json, Value};
use std::time::Duration;

const WIDGET_CRD: &str = include_str!("../testdata/widget-crd.yaml");

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).expect("a numeric resourceVersion")
}

#[test]
fn kubectl_creates_reads_patches_and_deletes_built_in_objects() {
    let sim = KubeSim::start(&[]);
    let out = sim.kubectl(&["create", "secret", "generic", "creds", "--from-literal=password=hunter2"]);
    assert!(out.success, "{}", out.all());
    let pw = sim.kubectl(&["get", "secret", "creds", "-o", "jsonpath={.data.password}"]).stdout;
    assert_eq!(pw, "aHVudGVyMg==", "base64 of hunter2");
    sim.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: demo}}\nspec:\n  containers:\n  - {name: c, image: cairn:dev, command: [sleep, '3600']}\n",
    );
    let pod = sim.get_json(&["pod", "p"]);
    assert_eq!(pod["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert_eq!(pod["metadata"]["generation"], 1);
    assert!(pod["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(pod["spec"]["restartPolicy"], "Always", "defaulted");
    let first = rv(&pod);
    // Strategic merge (kubectl's default for built-in kinds): the container merges by name.
    let out = sim.kubectl(&[
        "patch",
        "pod",
        "p",
        "-p",
        r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"}]}]}}"#,
    ]);
    assert!(out.success, "{}", out.all());
    let pod = sim.get_json(&["pod", "p"]);
    assert_eq!(pod["spec"]["containers"][0]["image"], "cairn:dev");
    assert_eq!(pod["spec"]["containers"][0]["env"][0]["name"], "A");
    assert_eq!(pod["metadata"]["generation"], 2, "a spec change bumps the generation");
    assert!(rv(&pod) > first);
    let out = sim.kubectl(&["patch", "pod", "p", "--type", "merge", "-p", r#"{"metadata":{"labels":{"tier":"db"}}}"#]);
    assert!(out.success, "{}", out.all());
    assert_eq!(sim.get_json(&["pod", "p"])["metadata"]["generation"], 2, "metadata changes do not");
    let test_op =
        r#"[{"op":"test","path":"/metadata/labels/tier","value":"web"},{"op":"remove","path":"/metadata/labels"}]"#;
    let out = sim.kubectl(&["patch", "pod", "p", "--type", "json", "-p", test_op]);
    assert!(!out.success && out.stderr.contains("test failed"), "{}", out.all());
    assert_eq!(sim.get_json(&["pod", "p"])["metadata"]["labels"]["tier"], "db", "a failed JSON patch changes nothing");
    let test_op =
        r#"[{"op":"test","path":"/metadata/labels/tier","value":"db"},{"op":"remove","path":"/metadata/labels/app"}]"#;
    assert!(sim.kubectl(&["patch", "pod", "p", "--type", "json", "-p", test_op]).success);
    let shown = sim.kubectl(&["get", "pods", "-l", "tier=db", "-o", "jsonpath={.items[*].metadata.name}"]).stdout;
    assert_eq!(shown, "p");
    assert!(sim.kubectl(&["get", "pods", "-l", "app=demo", "-o", "name"]).stdout.is_empty());
    let described = sim.kubectl(&["describe", "pod", "p"]).stdout;
    assert!(described.contains("tier=db") && described.contains("cairn:dev"), "{described}");
    let out = sim.kubectl(&["delete", "secret", "creds", "--wait"]);
    assert!(out.success, "{}", out.all());
    let out = sim.kubectl(&["get", "secret", "creds"]);
    assert!(!out.success && out.stderr.contains(r#"secrets "creds" not found"#), "{}", out.all());
}

#[test]
fn a_stale_resource_version_is_refused_with_a_conflict() {
    let sim = KubeSim::start(&[]);
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n");
    let old = sim.get_json(&["cm", "c"]);
    sim.kubectl(&["patch", "cm", "c", "--type", "merge", "-p", r#"{"data":{"a":"2"}}"#]);
    let mut stale = old.clone();
    stale["data"]["a"] = json!("3");
    let out = sim.kubectl_with_input(&["replace", "-f", "-"], Some(&stale.to_string()));
    assert!(!out.success, "{}", out.all());
    assert!(
        out.stderr.contains("the object has been modified; please apply your changes to the latest version"),
        "{}",
        out.all()
    );
    let mut current = sim.get_json(&["cm", "c"]);
    current["data"]["a"] = json!("3");
    let out = sim.kubectl_with_input(&["replace", "-f", "-"], Some(&current.to_string()));
    assert!(out.success, "{}", out.all());
    assert_eq!(sim.get_json(&["cm", "c"])["data"]["a"], "3");
}

/// The events of a raw watch (kubectl get --raw streams until the server ends it).
fn watch(sim: &KubeSim, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&{query}");
    let out = sim.kubectl(&["get", "--raw", &path]);
    out.stdout.lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect()
}

#[test]
fn watches_come_in_order_resume_from_a_version_and_expire() {
    let sim = KubeSim::start(&["--watch-cache", "8"]);
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w, labels: {keep: 'yes'}}\ndata: {n: '0'}\n");
    let start = rv(&sim.get_json(&["cm", "w"]));
    for n in 1..=3 {
        sim.kubectl(&["patch", "cm", "w", "--type", "merge", "-p", &format!(r#"{{"data":{{"n":"{n}"}}}}"#)]);
    }
    let events = watch(&sim, &format!("resourceVersion={start}"));
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap().into(), e["object"]["data"]["n"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        seen,
        [("MODIFIED".into(), "1".into()), ("MODIFIED".into(), "2".into()), ("MODIFIED".into(), "3".into())]
    );
    let versions: Vec<u64> = events.iter().map(|e| rv(&e["object"])).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    // From the middle: only what came after.
    let events = watch(&sim, &format!("resourceVersion={}", versions[1]));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["object"]["data"]["n"], "3");
    // Leaving a selector is a DELETED event for that watch.
    let now = rv(&sim.get_json(&["cm", "w"]));
    sim.kubectl(&["label", "cm", "w", "keep-"]);
    let events = watch(&sim, &format!("resourceVersion={now}&labelSelector=keep%3Dyes"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "DELETED");
    // Without a version: the current state as ADDED events first.
    let events = watch(&sim, "");
    assert_eq!(events[0]["type"], "ADDED");
    // Eight events later the start version is gone from the log: 410 Gone.
    for n in 0..8 {
        sim.kubectl(&["patch", "cm", "w", "--type", "merge", "-p", &format!(r#"{{"data":{{"m":"{n}"}}}}"#)]);
    }
    let events = watch(&sim, &format!("resourceVersion={start}"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[test]
fn owners_take_their_dependents_along_and_finalizers_hold_deletion() {
    let sim = KubeSim::start(&[]);
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\n");
    let uid = sim.get_json(&["cm", "owner"])["metadata"]["uid"].as_str().unwrap().to_string();
    let dependent = |name: &str, finalizer: bool| {
        let f = if finalizer { ", finalizers: [example.com/hold]" } else { "" };
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{f}, ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: '{uid}', blockOwnerDeletion: true}}]}}\n"
        )
    };
    sim.apply(&dependent("free", false));
    sim.apply(&dependent("held", true));
    // Foreground: the owner stays, marked, until its dependents are gone.
    assert!(sim.kubectl(&["delete", "cm", "owner", "--cascade=foreground", "--wait=false"]).success);
    sim.eventually(Duration::from_secs(10), "the free dependent goes", || !sim.kubectl(&["get", "cm", "free"]).success);
    let owner = sim.get_json(&["cm", "owner"]);
    assert!(owner["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(owner["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    let held = sim.get_json(&["cm", "held"]);
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "the held dependent is being deleted");
    assert!(
        sim.kubectl(&[
            "patch",
            "cm",
            "held",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#
        ])
        .success
    );
    sim.eventually(Duration::from_secs(10), "the owner goes after its dependents", || {
        !sim.kubectl(&["get", "cm", "owner"]).success
    });
    // Background (the default): the owner goes at once, its dependents after.
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\n");
    let uid2 = sim.get_json(&["cm", "owner"])["metadata"]["uid"].as_str().unwrap().to_string();
    sim.apply(&dependent("free", false).replace(&uid, &uid2));
    assert!(sim.kubectl(&["delete", "cm", "owner"]).success);
    sim.eventually(Duration::from_secs(10), "the dependent is collected", || {
        !sim.kubectl(&["get", "cm", "free"]).success
    });
    // A namespace takes its contents along.
    assert!(sim.kubectl(&["create", "namespace", "doomed"]).success);
    assert!(sim.kubectl(&["-n", "doomed", "create", "configmap", "x"]).success);
    assert!(sim.kubectl(&["delete", "namespace", "doomed", "--wait"]).success);
    assert!(!sim.kubectl(&["get", "namespace", "doomed"]).success);
    let out = sim.kubectl(&["-n", "doomed", "create", "configmap", "y"]);
    assert!(!out.success && out.stderr.contains(r#"namespaces "doomed" not found"#), "{}", out.all());
}

#[test]
fn server_side_apply_tracks_owners_and_reports_conflicts() {
    let sim = KubeSim::start(&[]);
    let cm = |data: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: s}}\ndata: {{{data}}}\n");
    let ssa = |manager: &str, yaml: &str, force: bool| {
        let mut args = vec!["apply", "--server-side", "--field-manager", manager, "-f", "-"];
        if force {
            args.push("--force-conflicts");
        }
        sim.kubectl_with_input(&args, Some(yaml))
    };
    assert!(ssa("alice", &cm("a: '1', b: '1'"), false).success);
    let out = ssa("bob", &cm("a: '2'"), false);
    assert!(!out.success, "{}", out.all());
    assert!(out.stderr.contains(r#"conflict with "alice" using v1: .data.a"#), "{}", out.all());
    assert!(ssa("bob", &cm("a: '1'"), false).success, "the same value is no conflict");
    assert!(ssa("bob", &cm("a: '2'"), true).success, "forced");
    let obj = sim.get_json(&["cm", "s", "--show-managed-fields"]);
    assert_eq!(obj["data"], json!({"a": "2", "b": "1"}));
    let owners: Vec<(String, Value)> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap().to_string(), e["fieldsV1"].clone()))
        .collect();
    assert_eq!(
        owners,
        [("alice".into(), json!({"f:data": {"f:b": {}}})), ("bob".into(), json!({"f:data": {"f:a": {}}}))]
    );
    // What alice stops applying goes; what bob holds stays.
    assert!(ssa("alice", &cm("c: '1'"), false).success);
    assert_eq!(sim.get_json(&["cm", "s"])["data"], json!({"a": "2", "c": "1"}));
}

#[test]
fn custom_resources_are_validated_defaulted_and_printed_by_their_definition() {
    let sim = KubeSim::start(&[]);
    sim.apply(WIDGET_CRD);
    sim.eventually(Duration::from_secs(10), "the kind is served", || sim.kubectl(&["get", "widgets"]).success);
    let out = sim.kubectl_with_input(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: even}\nspec: {size: 4}\n"),
    );
    assert!(!out.success, "{}", out.all());
    assert!(
        out.stderr
            .contains(r#"The Widget "even" is invalid: spec.size: Invalid value: "integer": spec.size must be odd"#),
        "{}",
        out.all()
    );
    let out = sim.kubectl_with_input(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: odd}\nspec: {colour: green}\n"),
    );
    assert!(!out.success && out.stderr.contains(r#"spec.colour: Unsupported value: "green""#), "{}", out.all());
    let out = sim.kubectl_with_input(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: odd}\nspec: {extra: 1}\n"),
    );
    assert!(
        !out.success && out.stderr.contains(r#"strict decoding error: unknown field "spec.extra""#),
        "{}",
        out.all()
    );
    sim.apply("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {colour: red}\n");
    let w = sim.get_json(&["wd", "w"]);
    assert_eq!(w["spec"]["size"], 3, "defaulted");
    // The main resource ignores status; the status subresource changes only status.
    sim.kubectl(&["patch", "widget", "w", "--type", "merge", "-p", r#"{"status":{"phase":"Sneaky"}}"#]);
    assert!(sim.get_json(&["wd", "w"])["status"].is_null());
    let out = sim.kubectl(&[
        "patch",
        "widget",
        "w",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Ready"},"spec":{"size":5}}"#,
    ]);
    assert!(out.success, "{}", out.all());
    let w = sim.get_json(&["wd", "w"]);
    assert_eq!(
        (w["status"]["phase"].as_str(), w["spec"]["size"].as_i64(), w["metadata"]["generation"].as_i64()),
        (Some("Ready"), Some(3), Some(1))
    );
    let table = sim.kubectl(&["get", "widgets"]).stdout;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "PHASE", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("w "), "{table}");
    assert!(table.contains("Ready"), "{table}");
    // A schema that is not structural is refused, as by the apiserver.
    let loose = WIDGET_CRD
        .replace("name: widgets.example.com", "name: gadgets.example.com")
        .replace(
            "{kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}",
            "{kind: Gadget, plural: gadgets}",
        )
        .replace("              phase: {type: string}", "              phase: {}");
    let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&loose));
    assert!(!out.success, "{}", out.all());
    assert!(
        out.stderr.contains(
            "properties[status].properties[phase].type: Required value: must not be empty for specified object fields"
        ),
        "{}",
        out.all()
    );
    // Deleting the definition takes its resources along.
    assert!(sim.kubectl(&["delete", "crd", "widgets.example.com"]).success);
    sim.eventually(Duration::from_secs(10), "the kind is no longer served", || {
        !sim.kubectl(&["get", "widgets"]).success
    });
}

#[test]
fn kubectl_get_watch_shows_each_change_and_watches_can_start_with_the_current_state() {
    let sim = KubeSim::start(&[]);
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
    let mut watcher = std::process::Command::new("kubectl")
        .args(["get", "configmaps", "-w", "--output-watch-events", "--request-timeout=6s"])
        .env("KUBECONFIG", &sim.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Once the listed object is shown, the watch runs from the list's version: nothing after
    // it can be missed.
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.starts_with("ADDED")) {
        lines.push(rx.recv_timeout(Duration::from_secs(10)).expect("kubectl shows the list"));
    }
    sim.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
    assert!(sim.kubectl(&["delete", "cm", "a"]).success);
    while lines.len() < 4 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let out = lines.join("\n");
    let events: Vec<(String, String)> = lines
        .iter()
        .skip(1)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].to_string())
        })
        .collect();
    assert_eq!(
        events,
        [("ADDED".into(), "a".into()), ("ADDED".into(), "b".into()), ("DELETED".into(), "a".into())],
        "{out}"
    );
    // sendInitialEvents: the current objects, then a bookmark that says they are all there.
    let path = "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1";
    let lines: Vec<Value> =
        sim.kubectl(&["get", "--raw", path]).stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0]["type"].as_str(), lines[0]["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    assert_eq!(lines[1]["type"], "BOOKMARK");
    assert_eq!(lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}
