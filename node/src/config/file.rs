//! `--config-file`: etcd's YAML configuration file. Its keys are the flags' names, and the TLS
//! settings sit in `client-transport-security` and `peer-transport-security` maps; as in etcd,
//! a configuration file replaces the command line's other flags and the environment.

use serde_yaml::Value;
use std::ffi::OsString;
use std::path::PathBuf;

fn scalar(key: &str, v: &Value) -> Result<Option<String>, String> {
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().filter_map(|i| scalar(key, i).ok().flatten()).collect();
            (!items.is_empty()).then(|| items.join(","))
        }
        _ => return Err(format!("--config-file: {key}: not a value")),
    })
}

/// The flags a configuration file gives, as `--name=value` arguments.
pub fn args(text: &str) -> Result<Vec<String>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("--config-file: {e}"))?;
    let Value::Mapping(map) = doc else {
        return Err("--config-file: not a YAML mapping".into());
    };
    let mut out = Vec::new();
    for (k, v) in &map {
        let key = k.as_str().ok_or("--config-file: a key that is not a string")?;
        let prefix = match key {
            "client-transport-security" => Some(""),
            "peer-transport-security" => Some("peer-"),
            _ => None,
        };
        match (prefix, v) {
            (Some(prefix), Value::Mapping(sec)) => {
                for (sk, sv) in sec {
                    let sk = sk.as_str().ok_or("--config-file: a key that is not a string")?;
                    // etcd's YAML says client-cert-auth on both sides.
                    let flag = match (prefix, sk) {
                        ("peer-", "client-cert-auth") => "peer-client-cert-auth".to_string(),
                        _ => format!("{prefix}{sk}"),
                    };
                    if let Some(v) = scalar(sk, sv)? {
                        out.push(format!("--{flag}={v}"));
                    }
                }
            }
            (Some(_), Value::Null) => {}
            (Some(_), _) => return Err(format!("--config-file: {key}: not a mapping")),
            (None, v) => {
                if let Some(v) = scalar(key, v)? {
                    out.push(format!("--{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// With `--config-file` among `args`: the command line the file makes (the program's name,
/// then the file's flags), and a note saying the rest was ignored.
pub fn replacing(args: &[OsString]) -> Option<Result<(Vec<OsString>, String), String>> {
    let path = args.iter().enumerate().find_map(|(i, a)| match a.to_str()?.strip_prefix("--config-file")? {
        "" => args.get(i + 1).map(PathBuf::from),
        rest => rest.strip_prefix('=').map(PathBuf::from),
    })?;
    let flags = std::fs::read_to_string(&path)
        .map_err(|e| format!("--config-file {}: {e}", path.display()))
        .and_then(|text| self::args(&text));
    Some(flags.map(|flags| {
        let mut line: Vec<OsString> = args.iter().take(1).cloned().collect();
        line.extend(flags.into_iter().map(OsString::from));
        let note = format!(
            "loaded server configuration from {}: other command line flags and environment variables are ignored",
            path.display()
        );
        (line, note)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_flags_and_tls_maps_their_sides() {
        let yaml = "name: 'infra1'\ndata-dir:\nsnapshot-count: 100\nstrict-reconfig-check: true\n\
                    log-outputs: [stderr]\nclient-transport-security:\n  cert-file: /c.crt\n  client-cert-auth: false\n\
                    peer-transport-security:\n  client-cert-auth: true\n  trusted-ca-file: /ca.crt\n";
        assert_eq!(
            args(yaml).unwrap(),
            [
                "--name=infra1",
                "--snapshot-count=100",
                "--strict-reconfig-check=true",
                "--log-outputs=stderr",
                "--cert-file=/c.crt",
                "--client-cert-auth=false",
                "--peer-client-cert-auth=true",
                "--peer-trusted-ca-file=/ca.crt",
            ]
        );
        assert!(args("- a\n- b\n").is_err());
    }
}
