//! `etagate -t -c FILE`: every kind of broken config gets its own located message.

use crate::common::*;

/// Write `text` to a file named `conf.yaml`, run `etagate -t -c` on it, return (exit code,
/// stderr with the directory prefix removed).
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conf.yaml");
    std::fs::write(&path, text).expect("write");
    let out = run_etagate(&["-t", "-c", path.to_str().expect("utf8 path")]);
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", dir.path().display()), "");
    (out.status.code().unwrap_or(-1), stderr)
}

const GOOD: &str = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app:
    servers: [127.0.0.1:8000]
routes:
  - name: default
    upstream: app
";

#[test]
fn a_valid_config_passes_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conf.yaml");
    std::fs::write(&path, GOOD).expect("write");
    let out = run_etagate(&["-t", "-c", path.to_str().expect("utf8")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn the_shipped_default_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/etagate.yaml");
    let out = run_etagate(&["-t", "-c", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_named() {
    let out = run_etagate(&["-t", "-c", "/nonexistent/etagate.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "/nonexistent/etagate.yaml: cannot read the configuration: No such file or directory"
        ),
        "{err}"
    );
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    let (code, err) = check("# nothing here\n\n");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml: the file is empty; start from conf/etagate.yaml (it documents every key)"
    );
}

#[test]
fn an_unknown_key_names_its_place_and_the_keys_allowed_there() {
    let (code, err) = check(&GOOD.replace(
        "    servers: [127.0.0.1:8000]\n",
        "    servers: [127.0.0.1:8000]\n    timout: 5s\n",
    ));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:6:5: unknown key 'timout' in upstream 'app'; expected one of: servers, timeout, health_check, host, tls, max_requests"
    );
}

#[test]
fn a_wrong_type_names_the_expected_type() {
    let (code, err) = check(&GOOD.replace("  - address: 127.0.0.1:8080", "  - address: [1, 2]"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with(
            "conf.yaml:2:14: 'address' of listener #1 must be a string, found sequence"
        ),
        "{err}"
    );
}

#[test]
fn a_bad_duration_is_located() {
    let (code, err) = check(&GOOD.replace(
        "    servers: [127.0.0.1:8000]\n",
        "    servers: [127.0.0.1:8000]\n    timeout: { read: soon }\n",
    ));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:6:22: 'timeout.read' of upstream 'app' must be a duration such as 5s or 250ms, found string \"soon\""
    );
}

#[test]
fn duplicate_route_names_point_at_the_second() {
    let (code, err) = check(&format!(
        "{GOOD}  - name: default\n    path: /api\n    upstream: app\n"
    ));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:9:11: duplicate route name 'default' (first used by route #1); route names must be unique"
    );
}

#[test]
fn a_route_naming_an_unknown_upstream_lists_the_defined_ones() {
    let (code, err) = check(&GOOD.replace("    upstream: app", "    upstream: ap"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:8:15: route 'default' names upstream 'ap', which is not defined; defined upstreams: app"
    );
}

#[test]
fn an_unparsable_listener_address_shows_the_expected_form() {
    let (code, err) = check(&GOOD.replace("127.0.0.1:8080", "localhost-8080"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:2:14: 'localhost-8080' is not an IP:port address; write it like 0.0.0.0:8080 or [::]:8080"
    );
}

#[test]
fn an_unusable_upstream_server_is_located_in_its_list() {
    let (code, err) = check(&GOOD.replace("[127.0.0.1:8000]", "[127.0.0.1:8000, no-port-here]"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("conf.yaml:5:31: 'no-port-here' is not a host:port"),
        "{err}"
    );
}

#[test]
fn a_missing_required_key_is_named() {
    let (code, err) = check(&GOOD.replace("    upstream: app\n", ""));
    assert_eq!(code, 1);
    assert!(
        err.contains("route 'default' is missing the required key 'upstream'; add it"),
        "{err}"
    );
    assert!(err.starts_with("conf.yaml:7:"), "{err}");
}

#[test]
fn a_yaml_syntax_error_is_located() {
    let (code, err) = check("listeners: [\n  - address: x\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("conf.yaml:"), "{err}");
    let loc: Vec<&str> = err.splitn(4, ':').collect();
    assert!(
        loc[1].parse::<usize>().is_ok() && loc[2].parse::<usize>().is_ok(),
        "{err}"
    );
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = GOOD
        .replace("127.0.0.1:8080", "nope")
        .replace("    upstream: app", "    upstream: missing");
    let (code, err) = check(&text);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("conf.yaml:2:14:"));
    assert!(lines[1].starts_with("conf.yaml:8:15:"));
}

#[test]
fn an_admin_address_shared_with_a_public_listener_is_refused() {
    let (code, err) = check(&format!("{GOOD}admin:\n  address: 127.0.0.1:8080\n"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:10:12: 127.0.0.1:8080 is also a public listener; the admin endpoints need their own address"
    );
}

/// Every complete example in the configuration reference (```yaml blocks; fragments are
/// marked ```yaml fragment) is a valid configuration.
#[test]
fn every_complete_example_in_the_configuration_reference_is_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim_end() == "```yaml" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                examples.push(current.take().expect("open block"));
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(
        examples.len() >= 5,
        "found only {} examples",
        examples.len()
    );
    for (i, example) in examples.iter().enumerate() {
        let (code, err) = check(example);
        assert_eq!(code, 0, "example #{} is invalid:\n{err}\n{example}", i + 1);
    }
}

#[test]
fn a_host_pattern_with_a_port_is_refused() {
    let (code, err) = check(&format!("{GOOD}    hosts: [example.com:8080]\n"));
    assert_eq!(code, 1);
    assert!(
        err.contains("'example.com:8080' is not a host pattern"),
        "{err}"
    );
}

#[test]
fn an_unparsable_size_suggests_the_format() {
    let (code, err) = check(&format!("{GOOD}cache:\n  budget: lots\n"));
    assert_eq!(code, 1);
    assert!(
        err.contains("'cache.budget' must be a size such as 64MiB or 512KiB"),
        "{err}"
    );
}

#[test]
fn a_duplicate_key_points_at_its_second_occurrence() {
    let (code, err) = check(&format!(
        "{GOOD}cache:\n  budget: 64MiB\ncache:\n  budget: 32MiB\n"
    ));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:11:1: the key 'cache' appears twice in the top level; keep one"
    );
}

#[test]
fn the_disk_tier_may_keep_objects_larger_than_memory_but_not_beyond_its_budget() {
    let disk = tempfile::tempdir().expect("disk dir");
    let conf = |max: &str| {
        format!(
            "{GOOD}cache:\n  budget: 64MiB\n  max_object_size: 1MiB\n  disk:\n    path: {}\n    budget: 160MiB\n    max_object_size: {max}\n",
            disk.path().display()
        )
    };
    let (code, err) = check(&conf("10MiB"));
    assert_eq!(
        code, 0,
        "larger than memory keeps, a sixteenth of the disk: {err}"
    );
    let (code, err) = check(&conf("11MiB"));
    assert_eq!(code, 1);
    assert!(
        err.contains("conf.yaml:15:22: 11.0 MiB must be between 1 byte and a sixteenth of cache.disk.budget (10.0 MiB)"),
        "{err}"
    );
}

#[test]
fn compression_settings_are_checked_where_they_are_written() {
    let (code, err) = check(&format!(
        "{GOOD}    compression:\n      codings: [gzip, br, gzip]\n      types: [text/html, html]\n      stored_levels: {{ br: 12 }}\n"
    ));
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(
        lines,
        [
            "conf.yaml:10:27: gzip is listed twice; remove one",
            "conf.yaml:11:26: 'html' is not a media range; write it like text/html, text/* or application/*+json",
            "conf.yaml:12:28: br level 12 is out of range; use 0 to 11",
        ],
        "{err}"
    );
    let (code, err) = check(&format!(
        "{GOOD}    compression: {{ codings: [deflate] }}\n"
    ));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "conf.yaml:9:30: 'compression.codings[0]' of route 'default': 'deflate' is not allowed; use one of: zstd, br, gzip"
    );
}
