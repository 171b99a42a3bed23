//! Configuration: the YAML schema, its validation into an immutable runtime form, and the
//! live snapshot that reloads swap.
//!
//! - [`schema`]: what the file may say (typed, unknown keys rejected);
//! - [`build`]: every check, once, with located errors;
//! - [`runtime`]: what requests read;
//! - [`live`]: the current snapshot, swapped atomically on reload.

pub mod build;
pub mod error;
pub mod live;
pub mod locate;
pub mod runtime;
pub mod schema;

pub use error::{ConfigError, ConfigErrors};
pub use live::LiveConfig;
pub use runtime::{ConfigSource, RuntimeConfig};

use locate::SpanIndex;
use std::path::Path;

/// Read, parse and validate a configuration file.
pub fn load_file(
    path: &Path,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(ConfigError {
            file: name.clone(),
            position: None,
            message: format!("cannot read the configuration: {e}; check the path given with -c"),
        })
    })?;
    parse(
        &name,
        &text,
        ConfigSource::File(path.to_path_buf()),
        previous,
    )
}

/// Parse and validate configuration text; `name` is how errors refer to it.
pub fn parse(
    name: &str,
    text: &str,
    source: ConfigSource,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && l != "---"
    });
    if !has_content {
        return Err(ConfigErrors::single(ConfigError {
            file: name.to_string(),
            position: None,
            message: "the file is empty; start from conf/etagate.yaml (it documents every key)"
                .to_string(),
        }));
    }
    let file: schema::ConfigFile = serde_yaml::from_str(text)
        .map_err(|e| ConfigErrors::single(error::from_serde(name, &e, &SpanIndex::build(text))))?;
    build::build(name, text, file, source, previous)
}

/// The configuration of quick mode: one listener, one upstream, one catch-all route, every
/// policy at its documented default.
pub fn quick_mode(
    listen: &str,
    upstreams: &[String],
    admin: Option<&str>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let mut admin_conf = schema::AdminConf::default();
    if let Some(a) = admin {
        admin_conf.address = a.to_string();
    }
    let file = schema::ConfigFile {
        listeners: vec![schema::ListenerConf {
            address: listen.to_string(),
            tls: None,
        }],
        admin: admin_conf,
        upstreams: [(
            "default".to_string(),
            schema::UpstreamConf {
                servers: upstreams.to_vec(),
                timeout: Default::default(),
                health_check: None,
                host: None,
                tls: None,
            },
        )]
        .into_iter()
        .collect(),
        routes: vec![schema::RouteConf {
            name: "default".to_string(),
            hosts: vec![],
            path: "/".to_string(),
            upstream: "default".to_string(),
            etag: Default::default(),
            cache: Default::default(),
            debug_headers: false,
        }],
        cache: Default::default(),
        etag: Default::default(),
        access_log: Default::default(),
        server: Default::default(),
    };
    build::build("command line", "", file, ConfigSource::QuickMode, None)
}
