//! etcd's environment variables: every flag can be given as `ETCD_` and its name in capitals
//! with `_` for `-` (`--initial-cluster-state` is `ETCD_INITIAL_CLUSTER_STATE`). A flag given
//! both ways stops the start, with etcd's message; a variable that names no flag is reported.

use std::ffi::OsString;

/// Variables etcd itself reads without a flag behind them.
const NOT_FLAGS: [&str; 1] = ["ETCD_UNSUPPORTED_ARCH"];

/// The variable for a flag.
pub fn var_for(flag: &str) -> String {
    format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// `args` with the flags `vars` give appended (as `--flag=value`), and the warnings for
/// variables that name no flag; `flags`: the long names the command line takes.
pub fn merge(
    args: Vec<OsString>,
    vars: impl IntoIterator<Item = (String, String)>,
    flags: &[String],
) -> Result<(Vec<OsString>, Vec<String>), String> {
    let given = |flag: &str| {
        args.iter().filter_map(|a| a.to_str()).any(|a| {
            let a = a.strip_prefix("--").or_else(|| a.strip_prefix('-')).unwrap_or("");
            a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('='))
        })
    };
    let mut vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with("ETCD_")).collect();
    vars.sort();
    let (mut out, mut warnings) = (args.clone(), Vec::new());
    for (key, value) in vars {
        if NOT_FLAGS.contains(&key.as_str()) {
            continue;
        }
        let Some(flag) = flags.iter().find(|f| var_for(f) == key) else {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
            continue;
        };
        if given(flag) {
            return Err(format!(
                "conflicting environment variable {key:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            ));
        }
        out.push(OsString::from(format!("--{flag}={value}")));
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn variables_become_flags_and_a_flag_given_twice_ways_is_refused() {
        let flags = vec!["name".to_string(), "initial-cluster-state".to_string(), "client-cert-auth".to_string()];
        let vars = vec![
            ("ETCD_NAME".to_string(), "infra1".to_string()),
            ("ETCD_CLIENT_CERT_AUTH".to_string(), "true".to_string()),
            ("ETCD_NOSUCH".to_string(), "x".to_string()),
            ("ETCD_UNSUPPORTED_ARCH".to_string(), "arm".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let (args, warnings) = merge(os(&["cairn", "--initial-cluster-state", "new"]), vars.clone(), &flags).unwrap();
        assert_eq!(args, os(&["cairn", "--initial-cluster-state", "new", "--client-cert-auth=true", "--name=infra1"]));
        assert_eq!(warnings, ["unrecognized environment variable ETCD_NOSUCH=x"]);
        let err = merge(os(&["cairn", "--name=x"]), vars, &flags).unwrap_err();
        assert!(err.starts_with("conflicting environment variable \"ETCD_NAME\" is shadowed"), "{err}");
    }
}
