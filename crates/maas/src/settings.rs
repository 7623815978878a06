//! Configuration loading: built-in defaults ← optional TOML file ← `MAAS_<SECTION>__<KEY>`
//! environment variables ← command-line flags. Also the well-known files of a data directory.
//!
//! A key maas doesn't know is refused, whichever layer it comes from, and every error names
//! the key and where its value came from (the file, or the environment variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use figment::providers::{Data, Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use maas_core::config::Config;

/// Prefix of configuration environment variables; `__` separates section and key.
const ENV_PREFIX: &str = "MAAS_";
const ENV_SEPARATOR: &str = "__";

/// Keys whose values are strings however they look. Figment parses environment values, so
/// `MAAS_OPERATOR__TOKEN=1234` would otherwise become a number and fail extraction.
const STRING_KEYS: &[&str] = &[
    "operator.token",
    "operator.listen",
    "server.data_dir",
    "server.listen",
];

/// Marks the values that came from the environment, to name their variable in errors.
const ENV_SOURCE: &str = "environment";

/// Name of the file holding the generated operator token, inside the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Name of the file a running server writes its address and pid to, inside the data directory.
pub const SERVER_INFO_FILE: &str = "server.json";

/// Name of the file a running server holds locked, inside the data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// What the command line contributes to the configuration; `None` leaves lower layers alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub operator_listen: Option<SocketAddr>,
}

/// Loads the configuration from every layer, reading the process environment, and checks it.
pub fn load(overrides: &Overrides) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &overrides.config_file {
        figment = figment.merge(toml_file(path)?);
    }
    figment = merge_env(figment);
    figment = merge_flags(figment, overrides);
    let config: Config = figment
        .extract()
        .map_err(|error| anyhow::anyhow!("{}", describe(&figment, error)))?;
    config
        .check()
        .map_err(|problems| anyhow::anyhow!("invalid configuration: {problems}"))?;
    Ok(config)
}

/// A missing file given explicitly is an error (figment would silently skip it).
fn toml_file(path: &Path) -> anyhow::Result<Data<Toml>> {
    if !path.is_file() {
        bail!("config file {} does not exist", path.display());
    }
    Ok(Toml::file_exact(path))
}

/// Only `MAAS_<SECTION>__<KEY>` variables are configuration: every key lives in a section,
/// and skipping the rest keeps client variables such as `MAAS_OPERATOR_TOKEN` or
/// `MAAS_LOG_FORMAT` from clashing with the configuration's shape.
fn config_env() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split(ENV_SEPARATOR)
        .filter(|key| key.as_str().contains('.'))
}

fn merge_env(figment: Figment) -> Figment {
    let env = config_env();
    let mut figment = figment.merge(FromEnv(env.clone().ignore(STRING_KEYS)));
    for (key, value) in env.iter() {
        if STRING_KEYS.contains(&key.as_str()) {
            figment = figment.merge(FromEnv(Serialized::default(key.as_str(), value)));
        }
    }
    figment
}

/// A provider of environment values, marked as such: figment's own metadata would name a
/// line of this file for the string keys and no variable at all for the others.
struct FromEnv<P>(P);

impl<P: Provider> Provider for FromEnv<P> {
    fn metadata(&self) -> Metadata {
        Metadata::from("environment variable", Source::Custom(ENV_SOURCE.into()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

fn merge_flags(mut figment: Figment, overrides: &Overrides) -> Figment {
    if let Some(dir) = &overrides.data_dir {
        figment = figment.merge(Serialized::default("server.data_dir", dir));
    }
    if let Some(listen) = overrides.listen {
        figment = figment.merge(Serialized::default("server.listen", listen.to_string()));
    }
    if let Some(listen) = overrides.operator_listen {
        figment = figment.merge(Serialized::default("operator.listen", listen.to_string()));
    }
    figment
}

/// One line per error, each naming its key (`server.listen`) and the value's source.
fn describe(figment: &Figment, error: figment::Error) -> String {
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| describe_one(figment, &error))
        .collect();
    lines.join("\n")
}

fn describe_one(figment: &Figment, error: &figment::Error) -> String {
    use figment::error::Kind;
    // The path ends with the key at fault, an unknown one included.
    let path = &error.path;
    let what = match &error.kind {
        Kind::UnknownField(_, known) => {
            let section = match &path[..path.len().saturating_sub(1)] {
                [] => "sections".to_owned(),
                parent => format!("keys of {}", parent.join(".")),
            };
            format!(
                "unknown configuration key {}{}",
                path.join("."),
                known_keys(&section, known)
            )
        }
        kind if path.is_empty() => format!("invalid configuration: {kind}"),
        kind => format!("invalid configuration key {}: {kind}", path.join(".")),
    };
    // The value's own provider, else the one figment blamed (for a whole section).
    let metadata = figment
        .find_metadata(&path.join("."))
        .or(error.metadata.as_ref());
    match metadata.and_then(|m| m.source.as_ref()) {
        Some(Source::File(file)) => format!("{what} (in {})", file.display()),
        Some(Source::Custom(source)) if source == ENV_SOURCE => {
            format!("{what} (from environment variable {})", env_names(path))
        }
        // The defaults and the command-line flags: nothing to point at but the key.
        _ => what,
    }
}

fn known_keys(section: &str, known: &[&str]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("; known {section}: {}", known.join(", "))
    }
}

/// The variables that set `path` or keys under it, as spelt in the environment:
/// `["rate_limit"]` → `MAAS_RATE_LIMIT__ENABLED`.
fn env_names(path: &[String]) -> String {
    let key = path.join(".");
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                return false;
            };
            let keys: Vec<String> = rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            let named = keys.join(".");
            keys.len() > 1 && (named == key || named.starts_with(&format!("{key}.")))
        })
        .collect();
    if names.is_empty() {
        let keys: Vec<String> = path.iter().map(|k| k.to_ascii_uppercase()).collect();
        return format!("{ENV_PREFIX}{}", keys.join(ENV_SEPARATOR));
    }
    names.join(", ")
}

// `Jail` closures must return figment's (large) error type; that is its API, not our choice.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    fn load_in_jail(overrides: &Overrides) -> Result<Config, figment::Error> {
        load(overrides).map_err(|error| error.to_string().into())
    }

    #[test]
    fn defaults_need_nothing() {
        Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            let config = load_in_jail(&Overrides::default())?;
            assert_eq!(config.server.data_dir, PathBuf::from("./maas-data"));
            assert_eq!(config.server.listen.to_string(), "127.0.0.1:8008");
            assert!(config.rate_limits.enabled);
            assert_eq!(config.operator.token, None);
            Ok(())
        });
    }

    #[test]
    fn env_overrides_sections_and_client_variables_are_ignored() {
        Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            jail.set_env("MAAS_RATE_LIMITS__ENABLED", "false");
            jail.set_env("MAAS_RATE_LIMITS__LOGIN_PER_IP__BURST", "9");
            jail.set_env("MAAS_SERVER__LISTEN", "0.0.0.0:9000");
            jail.set_env("MAAS_OPERATOR_TOKEN", "client-side-token");
            jail.set_env("MAAS_LOG_FORMAT", "json");
            let config = load_in_jail(&Overrides::default())?;
            assert!(!config.rate_limits.enabled);
            assert_eq!(config.rate_limits.login_per_ip.burst, 9);
            assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
            assert_eq!(config.operator.token, None);
            Ok(())
        });
    }

    #[test]
    fn string_keys_stay_strings() {
        Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            jail.set_env("MAAS_OPERATOR__TOKEN", "12345");
            jail.set_env("MAAS_SERVER__DATA_DIR", "2024");
            let config = load_in_jail(&Overrides::default())?;
            assert_eq!(config.operator.token.as_deref(), Some("12345"));
            assert_eq!(config.server.data_dir, PathBuf::from("2024"));
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            jail.create_file(
                "maas.toml",
                "[server]\ndata_dir = \"from-toml\"\nfederation_port = 8448\n\
                 [rate_limits]\nenabled = false\n[passwords]\niterations = 3\n",
            )?;
            jail.set_env("MAAS_PASSWORDS__ITERATIONS", "4");
            jail.set_env("MAAS_SERVER__DATA_DIR", "from-env");
            let file = Some(PathBuf::from("maas.toml"));
            let overrides = Overrides {
                config_file: file.clone(),
                ..Overrides::default()
            };
            let config = load_in_jail(&overrides)?;
            assert_eq!(config.server.federation_port, 8448);
            assert!(!config.rate_limits.enabled);
            assert_eq!(config.passwords.iterations, 4);
            assert_eq!(config.server.data_dir, PathBuf::from("from-env"));

            let overrides = Overrides {
                config_file: file,
                data_dir: Some(PathBuf::from("from-flag")),
                listen: Some("127.0.0.1:0".parse().map_err(|_| "addr")?),
                operator_listen: Some("127.0.0.1:7".parse().map_err(|_| "addr")?),
            };
            let config = load_in_jail(&overrides)?;
            assert_eq!(config.server.data_dir, PathBuf::from("from-flag"));
            assert_eq!(config.server.listen.port(), 0);
            assert_eq!(config.operator.listen.port(), 7);
            Ok(())
        });
    }

    /// The error of loading with `setup` done in a clean environment.
    fn load_error(jail: &mut Jail, toml: &str, env: &[(&str, &str)]) -> String {
        jail.clear_env(); // variables of the surrounding shell must not leak in
        for (key, value) in env {
            jail.set_env(key, value);
        }
        let overrides = Overrides {
            config_file: Some(PathBuf::from("maas.toml")),
            ..Overrides::default()
        };
        let written = jail.create_file("maas.toml", toml);
        assert!(written.is_ok(), "cannot write maas.toml");
        match load(&overrides) {
            Ok(_) => panic!("loaded despite {toml:?} and {env:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_key_and_its_source() {
        Jail::expect_with(|jail| {
            let error = load_error(jail, "[rate_limit]\nenabled = false\n", &[]);
            assert!(
                error.starts_with("unknown configuration key rate_limit; known sections: server,"),
                "{error}"
            );
            assert!(error.ends_with("(in maas.toml)"), "{error}");
            let error = load_error(jail, "[server]\nlisten_addr = \"x\"\n", &[]);
            assert!(
                error.starts_with(
                    "unknown configuration key server.listen_addr; known keys of server: listen,"
                ),
                "{error}"
            );
            let error = load_error(jail, "", &[("MAAS_RATE_LIMIT__ENABLED", "false")]);
            assert!(
                error.starts_with("unknown configuration key rate_limit;")
                    && error.ends_with("(from environment variable MAAS_RATE_LIMIT__ENABLED)"),
                "{error}"
            );
            let error = load_error(jail, "", &[("MAAS_SERVER__LISTNE", "x")]);
            assert!(
                error.starts_with("unknown configuration key server.listne;")
                    && error.ends_with("(from environment variable MAAS_SERVER__LISTNE)"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key_not_a_source_file() {
        Jail::expect_with(|jail| {
            let error = load_error(jail, "", &[("MAAS_SERVER__LISTEN", "nowhere")]);
            assert_eq!(
                error,
                "invalid configuration key server.listen: invalid socket address syntax \
                 (from environment variable MAAS_SERVER__LISTEN)"
            );
            let error = load_error(jail, "[passwords]\niterations = \"two\"\n", &[]);
            assert!(
                error.starts_with("invalid configuration key passwords.iterations: invalid type")
                    && error.ends_with("(in maas.toml)"),
                "{error}"
            );
            let error = load_error(jail, "[passwords]\nparallelism = 0\n", &[]);
            assert!(
                error.starts_with("invalid configuration: passwords.parallelism:"),
                "{error}"
            );
            let error = load_error(jail, "[server\n", &[]);
            assert!(error.contains("maas.toml"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_and_missing_files_are_errors() {
        Jail::expect_with(|jail| {
            jail.clear_env(); // variables of the surrounding shell must not leak in
            jail.set_env("MAAS_RATE_LIMITS__ENABLED", "maybe");
            assert!(load(&Overrides::default()).is_err());
            jail.clear_env();
            let overrides = Overrides {
                config_file: Some(PathBuf::from("nope.toml")),
                ..Overrides::default()
            };
            assert!(load(&overrides).is_err());
            Ok(())
        });
    }
}
