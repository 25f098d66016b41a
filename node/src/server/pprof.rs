//! /debug/pprof/ on the client port with `--enable-pprof`, as etcd serves Go's: a CPU profile
//! in pprof's protobuf format (`go tool pprof http://host:2379/debug/pprof/profile?seconds=10`
//! opens it), and a heap summary. Off by default, as in etcd: a profile costs CPU while it
//! runs and tells how the server is built.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::time::Duration;

/// Samples per second, as Go's CPU profiler takes them.
const FREQUENCY: i32 = 100;
/// Go's default profile length.
const DEFAULT_SECONDS: u64 = 30;
/// A profile longer than this would outlive any sensible client timeout.
const MAX_SECONDS: u64 = 3600;

pub fn routes() -> Router {
    Router::new()
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/heap", get(heap))
}

async fn index() -> &'static str {
    "/debug/pprof/\n\nprofile: a CPU profile (?seconds=N, 30 by default), pprof's protobuf format\n\
     heap: a summary of the process's heap and memory\n"
}

async fn profile(uri: Uri) -> Response {
    let query = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes());
    let seconds = query.into_iter().find(|(k, _)| k == "seconds").map(|(_, v)| v.into_owned());
    // Go's rule: a missing or unusable `seconds` means the default.
    let seconds = seconds.and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(DEFAULT_SECONDS);
    if seconds > MAX_SECONDS {
        let msg = format!("profile duration exceeds the server's limit of {MAX_SECONDS} seconds\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    // The sampler runs on signals while this thread waits; the wait is a blocking one.
    let profiled = tokio::task::spawn_blocking(move || cpu_profile(Duration::from_secs(seconds))).await;
    match profiled {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile\""),
            ],
            bytes,
        )
            .into_response(),
        // Go's answer when a profile is already running, and to any other failure.
        Ok(Err(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("Could not enable CPU profiling: {e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("profiling failed: {e}\n")).into_response(),
    }
}

fn cpu_profile(length: Duration) -> Result<Vec<u8>, pprof::Error> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        // Unwinding inside these while a signal interrupts them can deadlock.
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()?;
    std::thread::sleep(length);
    let profile = guard.report().build()?.pprof()?;
    Ok(profile.encode_to_vec())
}

async fn heap() -> String {
    let mut out = String::from("heap summary\n");
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    let rows = [
        ("arena_bytes", m.arena),
        ("mmap_bytes", m.hblkhd),
        ("in_use_bytes", m.uordblks),
        ("free_bytes", m.fordblks),
        ("releasable_bytes", m.keepcost),
    ];
    for (name, v) in rows {
        out.push_str(&format!("{name} {v}\n"));
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
