//! The command line: every command, flag and argument of the `maas` binary (clap derive).
//! Parsing only; what a command does lives in `serve` and `commands`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Matrix-as-a-Service: many Matrix homeservers ("tenants") in one process.
#[derive(Debug, Parser)]
#[command(name = "maas", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (every key is optional).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// Data directory [default: ./maas-data, or `server.data_dir` from config/env].
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL)]
    pub data_dir: Option<PathBuf>,

    /// Operator API address of a running server, e.g. http://127.0.0.1:8009 or 127.0.0.1:8009
    /// (default: read from <DATA_DIR>/server.json).
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    pub url: Option<String>,

    /// Print the operator API's JSON instead of readable output.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (creates tenant `localhost` on the first start).
    Serve(ServeArgs),
    /// Manage tenants (homeservers) of a running server.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the users of one tenant.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage registration tokens of one tenant.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8008, or `server.listen`]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of the operator API [default: 127.0.0.1:8009, or `operator.listen`]; the same
    /// address as --listen serves it on the public listener.
    #[arg(long, value_name = "ADDR")]
    pub operator_listen: Option<SocketAddr>,

    /// Log line format (on stderr). The level comes from `RUST_LOG` (default `info,ruma_state_res=warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, env = "MAAS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Who may register on a tenant; serialises to the operator API's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Closed,
    Open,
    Token,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first admin user (the password is printed once).
    Create(TenantCreateArgs),
    /// List all tenants.
    List,
    /// Show one tenant.
    Show(TenantName),
    /// Change settings of a tenant.
    Set(TenantSetArgs),
    /// Suspend a tenant: its client API answers 403 M_FORBIDDEN, its data is kept.
    Suspend(TenantName),
    /// Resume a suspended tenant.
    Resume(TenantName),
    /// Delete a tenant and ALL its data from disk (needs --yes).
    Delete(TenantDeleteArgs),
    /// Give a tenant a new signing key; the old one stays published as expired, so what it
    /// signed still verifies.
    RotateKey(TenantName),
    /// Write a tenant's archive (settings, users, rooms, keys …) to a file, while it serves.
    Export(TenantExportArgs),
    /// Recreate a tenant from its archive, on this or another server and backend.
    Import(TenantImportArgs),
}

#[derive(Debug, Args)]
pub struct TenantName {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,
}

#[derive(Debug, Args)]
pub struct TenantCreateArgs {
    /// Server name (the part after `:` in user ids), e.g. `example.org`.
    pub server_name: String,

    /// Host name the tenant answers on; repeat for several [default: the server name].
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Registration policy [server default: closed].
    #[arg(long, value_enum)]
    pub registration: Option<Registration>,

    /// Most users the tenant may have, its admin included (at least 1) [default: no limit].
    #[arg(long, value_name = "N", value_parser = user_quota)]
    pub max_users: Option<u64>,

    /// Allow guest accounts.
    #[arg(long)]
    pub allow_guests: bool,

    /// Localpart of the generated first admin [server default: admin].
    #[arg(long, value_name = "LOCALPART")]
    pub admin_localpart: Option<String>,

    /// `m.homeserver.base_url` served in `/.well-known/matrix/client`.
    #[arg(long, value_name = "URL")]
    pub client_base_url: Option<String>,

    /// `m.server` served in `/.well-known/matrix/server`, e.g. `matrix.example.org:443`.
    #[arg(long, value_name = "HOST:PORT")]
    pub federation_server: Option<String>,
}

#[derive(Debug, Args)]
pub struct TenantSetArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// Replace the host names; repeat for several.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// New registration policy.
    #[arg(long, value_enum)]
    pub registration: Option<Registration>,

    /// New user quota, at least 1; below the current number of users, no new users are
    /// accepted until it is raised (nobody is removed).
    #[arg(
        long,
        value_name = "N",
        value_parser = user_quota,
        conflicts_with = "no_max_users"
    )]
    pub max_users: Option<u64>,

    /// Remove the user quota.
    #[arg(long)]
    pub no_max_users: bool,

    /// Allow guest accounts.
    #[arg(long, conflicts_with = "no_guests")]
    pub allow_guests: bool,

    /// Refuse guest accounts.
    #[arg(long)]
    pub no_guests: bool,

    /// `m.homeserver.base_url` served in `/.well-known/matrix/client`.
    #[arg(long, value_name = "URL", conflicts_with = "no_client_base_url")]
    pub client_base_url: Option<String>,

    /// Serve the default `m.homeserver.base_url` again.
    #[arg(long)]
    pub no_client_base_url: bool,

    /// `m.server` served in `/.well-known/matrix/server`, e.g. `matrix.example.org:443`:
    /// where other servers reach this tenant.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with = "no_federation_server"
    )]
    pub federation_server: Option<String>,

    /// Serve the default `m.server` again.
    #[arg(long)]
    pub no_federation_server: bool,

    /// PEM certificate chain (leaf first) the federation listener presents to servers asking
    /// for this tenant's names (SNI); with --tls-key. Read by the server, which rereads it
    /// when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "no_tls_certificate"
    )]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key of --tls-certificate.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_certificate",
        conflicts_with = "no_tls_certificate"
    )]
    pub tls_key: Option<PathBuf>,

    /// Present the platform's default certificate (federation.tls_certificate) again.
    #[arg(long)]
    pub no_tls_certificate: bool,
}

#[derive(Debug, Args)]
pub struct TenantDeleteArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// Confirm: all users, rooms and media of the tenant are removed for good.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct TenantExportArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// File to write the archive to (`-` for stdout); replaced only once complete.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TenantImportArgs {
    /// Archive written by `maas tenant export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replace an existing tenant of the same server name (its current data is deleted).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (a password is generated and printed unless given).
    Create(UserCreateArgs),
    /// List the users of a tenant.
    List(TenantName),
    /// Show one user.
    Show(UserRef),
    /// Set a new password (generated unless given); logs out all devices unless --keep-devices.
    ResetPassword(UserResetPasswordArgs),
    /// Deactivate a user for good (needs --yes).
    Deactivate(UserDeactivateArgs),
}

#[derive(Debug, Args)]
pub struct UserRef {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,
    /// The user's localpart: `alice` for `@alice:example.org`.
    pub localpart: String,
}

/// Where a new password comes from; neither flag means "let the server generate one".
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub user: UserRef,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Make the user a tenant admin.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, Args)]
pub struct UserResetPasswordArgs {
    #[command(flatten)]
    pub user: UserRef,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Keep the user's devices logged in.
    #[arg(long)]
    pub keep_devices: bool,
}

#[derive(Debug, Args)]
pub struct UserDeactivateArgs {
    #[command(flatten)]
    pub user: UserRef,

    /// Confirm: a deactivated user can never log in again.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a registration token (for tenants with `--registration token`).
    Create(TokenCreateArgs),
    /// List the registration tokens of a tenant.
    List(TenantName),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// The token text [default: generated by the server].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// How many registrations the token allows, at least 1 [default: unlimited].
    #[arg(long, value_name = "N", value_parser = token_uses)]
    pub uses: Option<u64>,

    /// Seconds from now until the token expires [default: never].
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u64>,
}

/// `--max-users`: the first admin counts, so 0 could never hold.
fn user_quota(value: &str) -> Result<u64, String> {
    positive(
        value,
        "the admin counts as a user; to stop new users use --registration closed",
    )
}

/// `--uses`: a token allowing no registration is of no use.
fn token_uses(value: &str) -> Result<u64, String> {
    positive(value, "leave --uses out for unlimited uses")
}

fn positive(value: &str, hint: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(0) => Err(format!("must be at least 1 ({hint})")),
        Ok(n) => Ok(n),
        Err(error) => Err(format!("not a whole number ({error})")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn data_dir_is_accepted_before_and_after_the_subcommand() {
        for argv in [
            &["maas", "--data-dir", "/d", "tenant", "list"][..],
            &["maas", "tenant", "--data-dir", "/d", "list"][..],
            &["maas", "tenant", "list", "--data-dir", "/d"][..],
            &["maas", "serve", "--data-dir", "/d"][..],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            assert_eq!(cli.global.data_dir, Some(PathBuf::from("/d")), "{argv:?}");
        }
    }

    #[test]
    fn tenant_create_collects_hosts() {
        let cli = Cli::try_parse_from([
            "maas",
            "tenant",
            "create",
            "example.test",
            "--host",
            "a.test",
            "--host",
            "b.test",
            "--registration",
            "open",
            "--max-users",
            "5",
        ])
        .expect("parses");
        let Command::Tenant(TenantCommand::Create(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.hosts, ["a.test", "b.test"]);
        assert_eq!(args.registration, Some(Registration::Open));
        assert_eq!(args.max_users, Some(5));
    }

    #[test]
    fn export_needs_a_file_and_import_takes_replace() {
        assert!(Cli::try_parse_from(["maas", "tenant", "export", "x.test"]).is_err());
        let cli = Cli::try_parse_from(["maas", "tenant", "export", "x.test", "--out", "a.jsonl"])
            .expect("parses");
        let Command::Tenant(TenantCommand::Export(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.out, PathBuf::from("a.jsonl"));
        let cli = Cli::try_parse_from(["maas", "tenant", "import", "a.jsonl", "--replace"])
            .expect("parses");
        let Command::Tenant(TenantCommand::Import(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.file, PathBuf::from("a.jsonl"));
        assert!(args.replace);
    }

    #[test]
    fn quotas_and_uses_must_be_positive() {
        for argv in [
            &["maas", "tenant", "create", "x.test", "--max-users", "0"][..],
            &["maas", "tenant", "set", "x.test", "--max-users", "0"][..],
            &["maas", "token", "create", "x.test", "--uses", "0"][..],
        ] {
            let error = Cli::try_parse_from(argv).expect_err("refused");
            let flag = argv[argv.len() - 2];
            assert!(error.to_string().contains(flag), "{argv:?}: {error}");
        }
        let cli = Cli::try_parse_from(["maas", "token", "create", "x.test", "--uses", "1"])
            .expect("parses");
        let Command::Token(TokenCommand::Create(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.uses, Some(1));
    }

    #[test]
    fn every_flag_has_help() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "maas{path}: {} has no help text",
                    arg.get_id()
                );
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "");
    }

    #[test]
    fn conflicting_flags_are_refused() {
        let result = Cli::try_parse_from([
            "maas",
            "tenant",
            "set",
            "x.test",
            "--max-users",
            "3",
            "--no-max-users",
        ]);
        assert!(result.is_err());
    }
}
