//! Configuration errors that say where and what to do.
//!
//! Every message has the form `FILE:LINE:COL: what is wrong; what to do`, the form compilers
//! use, so editors and CI logs can jump to the place. Errors without a place in the file (the
//! file is missing) carry only the file name.

use super::locate::{Position, SpanIndex};
use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// All problems found in one configuration, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn single(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Collects located errors while a parsed file is validated.
pub struct Reporter<'a> {
    file: &'a str,
    index: &'a SpanIndex,
    errors: Vec<ConfigError>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a str, index: &'a SpanIndex) -> Self {
        Reporter {
            file,
            index,
            errors: Vec::new(),
        }
    }

    /// An error about the value at `path` (e.g. `routes[1].upstream`).
    pub fn at_value(&mut self, path: &str, message: impl Into<String>) {
        let position = self.index.value(path).or_else(|| self.nearest(path));
        self.push(position, message);
    }

    /// An error about the key at `path` (a duplicate, a missing sibling).
    pub fn at_key(&mut self, path: &str, message: impl Into<String>) {
        let position = self.index.key(path).or_else(|| self.nearest(path));
        self.push(position, message);
    }

    fn push(&mut self, position: Option<Position>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            position,
            message: message.into(),
        });
    }

    /// Defaulted values are absent from the file: point at the closest enclosing node.
    fn nearest(&self, path: &str) -> Option<Position> {
        let mut p = path;
        while let Some(cut) = p.rfind(['.', '[']) {
            p = &p[..cut];
            if let Some(pos) = self.index.key(p) {
                return Some(pos);
            }
        }
        None
    }

    pub fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            self.errors
                .sort_by_key(|e| e.position.map(|p| (p.line, p.column)).unwrap_or((0, 0)));
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Describe the node at a serde path for a human: `upstream 'app'`, `route 'api'`, `listener #1`.
pub fn describe_path(path: &str, index: &SpanIndex) -> String {
    let mut parts = path.split('.');
    let head = parts.next().unwrap_or("");
    let (section, item) = match head.split_once('[') {
        Some((s, rest)) => (s, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (head, None),
    };
    let described = match (section, item) {
        ("upstreams", _) => parts.next().map(|name| format!("upstream '{name}'")),
        ("routes", Some(i)) => Some(
            index
                .scalar(&format!("routes[{i}].name"))
                .map(|n| format!("route '{n}'"))
                .unwrap_or_else(|| format!("route #{}", i + 1)),
        ),
        ("listeners", Some(i)) => Some(format!("listener #{}", i + 1)),
        _ => None,
    };
    let rest: Vec<&str> = path
        .split('.')
        .skip(if section == "upstreams" { 2 } else { 1 })
        .collect();
    match described {
        Some(d) if rest.is_empty() => d,
        Some(d) => format!("'{}' of {d}", rest.join(".")),
        None if path.is_empty() => "the top level".to_string(),
        None => format!("'{path}'"),
    }
}

/// Turn a serde_yaml error into a located, actionable message.
pub fn from_serde(file: &str, err: &serde_yaml::Error, index: &SpanIndex) -> ConfigError {
    let position = err.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let full = err.to_string();
    // serde_yaml appends " at line L column C"; the position is kept separately.
    let text = match full.rfind(" at line ") {
        Some(cut) => &full[..cut],
        None => full.as_str(),
    };
    let (path, detail) = split_serde_path(text);
    // A duplicate key is reported at its map; point at the second occurrence instead.
    let position = match detail.strip_prefix("duplicate field ") {
        Some(rest) => {
            let name = backticked(rest).first().copied().unwrap_or("");
            let full = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            index.key(&full).or(position)
        }
        None => position,
    };
    ConfigError {
        file: file.to_string(),
        position,
        message: rewrite_serde_detail(path, detail, index),
    }
}

/// serde_yaml prefixes messages with the path of the failing node (`routes[0].etag: ...`).
fn split_serde_path(text: &str) -> (&str, &str) {
    if let Some((head, rest)) = text.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
        if looks_like_path {
            return (head, rest);
        }
    }
    ("", text)
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn rewrite_serde_detail(path: &str, detail: &str, index: &SpanIndex) -> String {
    let place = describe_path(path, index);
    if let Some(rest) = detail.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let unknown = names.first().copied().unwrap_or("?");
        let expected = names.get(1..).unwrap_or(&[]).join(", ");
        return if expected.is_empty() {
            format!("unknown key '{unknown}' in {place}; remove it")
        } else {
            format!("unknown key '{unknown}' in {place}; expected one of: {expected}")
        };
    }
    if let Some(rest) = detail.strip_prefix("duplicate field ") {
        let name = backticked(rest).first().copied().unwrap_or("?").to_string();
        return format!("the key '{name}' appears twice in {place}; keep one");
    }
    if let Some(rest) = detail.strip_prefix("missing field ") {
        let name = backticked(rest).first().copied().unwrap_or("?").to_string();
        return format!("{place} is missing the required key '{name}'; add it");
    }
    if let Some(rest) = detail.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let got = names.first().copied().unwrap_or("?");
        let expected = names.get(1..).unwrap_or(&[]).join(", ");
        return format!("{place}: '{got}' is not allowed; use one of: {expected}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        // "integer `8080`, expected a string"; "string \"soon\", expected a duration"
        if let Some((found, expected)) = detail
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            let expected = match expected {
                "a duration" => "a duration such as 5s or 250ms",
                "a byte size" | "an integer or string" | "parsable string" => {
                    "a size such as 64MiB or 512KiB"
                }
                e => e,
            };
            return format!(
                "{place} must be {expected}, found {}",
                found.replace('`', "'")
            );
        }
    }
    if path.is_empty() {
        detail.to_string()
    } else {
        format!("{place}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_paths_with_names() {
        let idx = SpanIndex::build("routes:\n  - name: api\n    upstream: x\n");
        assert_eq!(describe_path("upstreams.app", &idx), "upstream 'app'");
        assert_eq!(describe_path("routes[0]", &idx), "route 'api'");
        assert_eq!(
            describe_path("routes[0].etag", &idx),
            "'etag' of route 'api'"
        );
        assert_eq!(describe_path("routes[3]", &idx), "route #4");
        assert_eq!(
            describe_path("listeners[0].tls", &idx),
            "'tls' of listener #1"
        );
        assert_eq!(describe_path("cache", &idx), "'cache'");
        assert_eq!(describe_path("", &idx), "the top level");
    }

    #[test]
    fn display_is_file_line_column() {
        let e = ConfigError {
            file: "conf.yaml".into(),
            position: Some(Position {
                line: 12,
                column: 3,
            }),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "conf.yaml:12:3: bad");
    }
}
