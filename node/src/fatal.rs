//! The member's way out when its storage fails under it (a full disk, an I/O error): no
//! write can be answered any more and none may be skipped, so it stops as etcd does (a
//! message, then exit status 1) rather than aborting. Nothing acknowledged is lost:
//! acknowledgement follows the WAL's fsync, and the next start replays the log.

/// Logs why and exits with status 1.
pub fn stop(what: &str, error: &dyn std::fmt::Display) -> ! {
    let text = error.to_string();
    let hint = if text.contains("os error 28") {
        "The disk is full: free space on the data dir's file system, then start the member \
         again. Every acknowledged write is on disk."
    } else {
        "Every acknowledged write is on disk; the member replays its log at the next start."
    };
    tracing::error!(error = %text, "{what}; stopping");
    eprintln!("cairn: {what}: {text}. {hint}");
    std::process::exit(1);
}
