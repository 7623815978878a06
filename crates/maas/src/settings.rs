//! Configuration loading: built-in defaults ← optional TOML file ← `MAAS_<SECTION>__<KEY>`
//! environment variables ← command-line flags. Also the well-known files of a data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use figment::Figment;
use figment::providers::{Data, Env, Format, Serialized, Toml};
use maas_core::config::Config;

/// Prefix of configuration environment variables; `__` separates section and key.
const ENV_PREFIX: &str = "MAAS_";

/// Keys whose values are strings however they look. Figment parses environment values, so
/// `MAAS_OPERATOR__TOKEN=1234` would otherwise become a number and fail extraction.
const STRING_KEYS: &[&str] = &["operator.token", "server.data_dir", "server.listen"];

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
}

/// Loads the configuration from every layer, reading the process environment.
pub fn load(overrides: &Overrides) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &overrides.config_file {
        figment = figment.merge(toml_file(path)?);
    }
    figment = merge_env(figment);
    figment = merge_flags(figment, overrides);
    figment
        .extract()
        .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))
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
        .split("__")
        .filter(|key| key.as_str().contains('.'))
}

fn merge_env(figment: Figment) -> Figment {
    let env = config_env();
    let mut figment = figment.merge(env.clone().ignore(STRING_KEYS));
    for (key, value) in env.iter() {
        if STRING_KEYS.contains(&key.as_str()) {
            figment = figment.merge(Serialized::default(key.as_str(), value));
        }
    }
    figment
}

fn merge_flags(mut figment: Figment, overrides: &Overrides) -> Figment {
    if let Some(dir) = &overrides.data_dir {
        figment = figment.merge(Serialized::default("server.data_dir", dir));
    }
    if let Some(listen) = overrides.listen {
        figment = figment.merge(Serialized::default("server.listen", listen.to_string()));
    }
    figment
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
            };
            let config = load_in_jail(&overrides)?;
            assert_eq!(config.server.data_dir, PathBuf::from("from-flag"));
            assert_eq!(config.server.listen.port(), 0);
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
