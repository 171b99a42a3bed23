//! Configuration: the YAML schema and its validation into a checked model, without I/O
//! beyond reading the file itself. It knows nothing of metrics, load balancers or the proxy;
//! the runtime layer above it instantiates a checked config into what requests read.
//!
//! - [`schema`]: what the file may say (typed, unknown keys rejected);
//! - [`check`]: every check the file alone can answer, once, with located errors;
//! - [`model`]: the checked configuration;
//! - [`locate`], [`error`]: positions in the file and messages that point at them;
//! - [`env`]: `${NAME}` replaced by environment variables when the file is read.

pub mod check;
pub mod cluster;
pub mod env;
pub mod error;
pub mod locate;
pub mod model;
pub mod schema;

pub use error::{ConfigError, ConfigErrors};
pub use model::{Config, ConfigSource};

use locate::SpanIndex;
use std::path::Path;

/// Read, parse and check a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(ConfigError {
            file: name.clone(),
            position: None,
            message: format!("cannot read the configuration: {e}; check the path given with -c"),
        })
    })?;
    let text = env::expand(&name, &text, |v| std::env::var(v).ok())?;
    parse(&name, &text, ConfigSource::File(path.to_path_buf()))
}

/// Parse and check configuration text; `name` is how errors refer to it. Pure: no I/O.
pub fn parse(name: &str, text: &str, source: ConfigSource) -> Result<Config, ConfigErrors> {
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
    check::check(name, text, file, source)
}

/// The configuration of quick mode: one listener, one upstream, one catch-all route, every
/// policy at its documented default.
pub fn quick_mode(
    listen: &str,
    upstreams: &[String],
    admin: Option<&str>,
) -> Result<Config, ConfigErrors> {
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
                max_requests: schema::default_max_requests(),
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
            tags: Default::default(),
            compression: Default::default(),
        }],
        cache: Default::default(),
        etag: Default::default(),
        access_log: Default::default(),
        server: Default::default(),
        cluster: None,
    };
    check::check("command line", "", file, ConfigSource::QuickMode)
}
