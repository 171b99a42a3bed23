//! `${NAME}` in a configuration file: the value of the environment variable `NAME`.
//!
//! What differs from one instance of a fleet to the next, its own address and name, is known
//! only where it runs: Kubernetes hands a pod its IP and name as environment variables (the
//! downward API), so one ConfigMap can say `advertise: ${POD_IP}:8471` for every pod. The
//! variables are read when the file is (at start, `-t` and every reload). An unset variable is
//! an error at its place, never an empty string; whole-line comments are left alone; there is
//! no other syntax (no defaults, no escapes): a file without `${` reads as before.

use super::error::{ConfigError, ConfigErrors};
use super::locate::Position;

/// `text` with every `${NAME}` replaced by `lookup(NAME)`.
pub fn expand(
    file: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let column = line.len() - rest.len() + at + 1;
            let error = |message: String| ConfigError {
                file: file.to_string(),
                position: Some(Position {
                    line: n + 1,
                    column,
                }),
                message,
            };
            let name = &after[..name_len];
            if name.is_empty()
                || !after[name_len..].starts_with('}')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                errors.push(error(
                    "'${' starts a variable: write ${NAME} with letters, digits and '_'"
                        .to_string(),
                ));
                out.push_str("${");
                rest = after;
                continue;
            }
            match lookup(name) {
                Some(v) if !v.contains(['\n', '\r']) => out.push_str(&v),
                Some(_) => errors.push(error(format!(
                    "environment variable {name} holds a line break; it must be one line"
                ))),
                None => errors.push(error(format!(
                    "environment variable {name} is not set; set it for etagate or write the value here"
                ))),
            }
            rest = &after[name_len + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD_IP" => Some("10.1.2.3".to_string()),
            "POD_NAME" => Some("etagate-0".to_string()),
            "TWO_LINES" => Some("a\nb".to_string()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_what_is_wrong_is_located() {
        let text = "cluster:\n  node: ${POD_NAME}\n  advertise: \"${POD_IP}:8471\"\n";
        assert_eq!(
            expand("c.yaml", text, env).expect("expanded"),
            "cluster:\n  node: etagate-0\n  advertise: \"10.1.2.3:8471\"\n"
        );
        assert_eq!(
            expand("c.yaml", "# ${UNSET} in a comment\nx: 1\n", env).expect("comments stay"),
            "# ${UNSET} in a comment\nx: 1\n"
        );
        assert_eq!(
            expand("c.yaml", "x: $HOME {}\n", env).expect("plain"),
            "x: $HOME {}\n"
        );
        for (text, want) in [
            (
                "a: 1\nb: ${UNSET}\n",
                "c.yaml:2:4: environment variable UNSET is not set",
            ),
            (
                "b: x${TWO_LINES}\n",
                "c.yaml:1:5: environment variable TWO_LINES holds a line break",
            ),
            ("b: ${POD IP}\n", "c.yaml:1:4: '${' starts a variable"),
            ("b: ${9X}\n", "c.yaml:1:4: '${' starts a variable"),
            ("b: ${POD_IP\n", "c.yaml:1:4: '${' starts a variable"),
        ] {
            let e = expand("c.yaml", text, env).expect_err(text).to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
