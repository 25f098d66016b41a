//! A container as a process: its command found in the bin dir (else on PATH), its own process
//! group (so SIGTERM and SIGKILL reach all it started), its own mount namespace in which the
//! pod's volumes and /etc/hosts are bind-mounted where the spec says, and its output appended
//! to the container's log file.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// A bind mount made inside the container's mount namespace: host path onto container path.
#[derive(Clone, Debug)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

pub struct Spec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub log: PathBuf,
}

/// `name` as the bin dir has it, else as PATH has it, else as given (the spawn then fails
/// with the OS's "not found", reported as the container's failure).
pub fn resolve(bin_dir: &Path, name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let in_bin = bin_dir.join(name);
    if in_bin.is_file() {
        return in_bin;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

pub fn spawn(bin_dir: &Path, spec: &Spec) -> std::io::Result<tokio::process::Child> {
    let program = resolve(bin_dir, spec.argv.first().map(String::as_str).unwrap_or_default());
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log)?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&spec.argv[1..]).env_clear().envs(spec.env.iter().cloned());
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    // Mount points must exist before the child needs them (the file system is shared).
    // A mount whose target holds another's source (an emptyDir on /tmp, with kube-sim's
    // state under /tmp) goes last: mounted first, it would hide that source.
    let mut ordered: Vec<&Mount> = spec.mounts.iter().collect();
    ordered.sort_by_key(|m| spec.mounts.iter().any(|o| !std::ptr::eq(*m, o) && o.source.starts_with(&m.target)));
    let mut mounts = Vec::new();
    for m in ordered {
        if m.source.is_dir() {
            std::fs::create_dir_all(&m.target)?;
        } else if !m.target.exists() {
            if let Some(parent) = m.target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&m.target, b"")?;
        }
        mounts.push((cstring(&m.source)?, cstring(&m.target)?, m.read_only));
    }
    let root = CString::new("/").expect("no NUL");
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, unshare, mount) on
    // memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Mounts made here stay here.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (source, target, read_only) in &mounts {
                if libc::mount(source.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if *read_only {
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                    if libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    cmd.kill_on_drop(true).spawn()
}

/// Sends `signal` to the process group a container leads.
pub fn signal(child: &tokio::process::Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a process group id we created.
        unsafe { libc::kill(-(pid as i32), signal) };
    }
}

/// `$(VAR)` references in a command or args, expanded from the container's env; `$$(VAR)`
/// stays literal; unknown references stay as written (as kubelet does).
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = lit;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_references_expand_as_kubelet_does() {
        let env = vec![("POD_IP".to_string(), "127.0.0.20".to_string()), ("NAME".to_string(), "m-0".to_string())];
        assert_eq!(expand("--listen=http://$(POD_IP):2379", &env), "--listen=http://127.0.0.20:2379");
        assert_eq!(expand("$(NAME)=$(NAME)", &env), "m-0=m-0");
        assert_eq!(expand("$$(NAME) $(NOPE) $x", &env), "$(NAME) $(NOPE) $x");
    }
}
