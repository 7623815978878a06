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
    /// Manage the media (uploads and cached remote files) of one tenant.
    #[command(subcommand)]
    Media(MediaCommand),
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
    /// Show the secret of a tenant's shared-secret registration (`register_new_matrix_user
    /// -k SECRET https://HOST`), or replace or remove it.
    SharedSecret(TenantSharedSecretArgs),
    /// Write a tenant's archive (settings, users, rooms, keys …) to a file, while it serves.
    Export(TenantExportArgs),
    /// Recreate a tenant from its archive, on this or another server and backend.
    Import(TenantImportArgs),
}

#[derive(Debug, Args)]
pub struct TenantSharedSecretArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// Replace the secret by a new random one; the old one registers nobody any more.
    #[arg(long, conflicts_with = "disable")]
    pub rotate: bool,

    /// Remove the secret: shared-secret registration is off until `--rotate` makes one.
    #[arg(long)]
    pub disable: bool,
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

    /// Largest upload, in bytes or with a binary unit (`100k`, `50M`, `1G`); never above the
    /// platform's `media.max_upload_bytes`. `default`: the platform's limit again.
    #[arg(long, value_name = "SIZE|default", value_parser = upload_size)]
    pub max_upload_size: Option<SizeSetting>,

    /// Bytes of media all users of the tenant may store together (`10G`, …); `none` removes
    /// the quota. Below the current usage it removes nothing: uploads are refused until the
    /// usage fits again.
    #[arg(long, value_name = "SIZE|none", value_parser = quota_size)]
    pub media_quota: Option<SizeSetting>,

    /// Bytes of media each user may store (`500M`, …); `none` removes the quota.
    #[arg(long, value_name = "SIZE|none", value_parser = quota_size)]
    pub user_media_quota: Option<SizeSetting>,

    /// Rooms the tenant may hold (created here or joined over federation); `none` removes
    /// the quota. Below the current number it removes nothing: new rooms are refused.
    #[arg(long, value_name = "N|none", value_parser = count_or_none)]
    pub max_rooms: Option<CountSetting>,

    /// Bytes the tenant may store, its database and media together (`10G`, …); `none`
    /// removes the quota. Once reached, new messages, rooms and uploads are refused.
    #[arg(long, value_name = "SIZE|none", value_parser = quota_size)]
    pub storage_quota: Option<SizeSetting>,

    /// Events the tenant's users may send per second together (at least 1); `none` removes
    /// the limit.
    #[arg(long, value_name = "N|none", value_parser = message_rate)]
    pub max_messages_per_second: Option<CountSetting>,

    /// Whether the tenant's users get URL previews (needs the platform's
    /// `media.url_preview.enabled` too).
    #[arg(long, value_enum, value_name = "on|off")]
    pub url_previews: Option<Switch>,

    /// `on`: the deprecated unauthenticated `/_matrix/media/*` downloads serve only media
    /// stored before now (an existing freeze keeps its time); `off`: they serve everything.
    #[arg(long, value_enum, value_name = "on|off")]
    pub freeze_unauthenticated_media: Option<Switch>,

    /// `on` (the default): a room the tenant's users have all left (and none is invited to)
    /// is purged from its database a while later; `off`: such rooms are kept.
    #[arg(long, value_enum, value_name = "on|off")]
    pub forget_empty_rooms: Option<Switch>,
}

/// A count for a quota, or `none`: the API's `null` (no quota).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountSetting {
    Count(u64),
    Unset,
}

/// A byte size for a media setting, or the keyword that goes back to no setting (`default`
/// for the upload limit, `none` for quotas): the API's `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSetting {
    Bytes(u64),
    Unset,
}

/// A setting turned on or off; a value rather than a pair of flags, so a script can pass what
/// it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
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

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// List a tenant's uploads, oldest first, a page at a time, with the bytes they use.
    List(MediaListArgs),
    /// Delete media and its thumbnails for good: an upload of the tenant, or another
    /// server's media from the tenant's cache.
    Delete(MediaRef),
    /// Quarantine media: kept, but served to no one (--release serves it again).
    Quarantine(MediaQuarantineArgs),
    /// Delete the tenant's cached copies of other servers' media not served for a while;
    /// they are fetched again when asked for.
    PurgeRemote(MediaPurgeArgs),
}

#[derive(Debug, Args)]
pub struct MediaListArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// Only this user's uploads (and usage): `@alice:example.org`, or `alice` for a user of
    /// this tenant.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Start after this cursor: the `next` printed by the previous page.
    #[arg(long, value_name = "CURSOR")]
    pub from: Option<String>,

    /// Uploads per page, 1 to 1000 [server default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct MediaRef {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// The media's content URI, `mxc://<server name>/<media id>`.
    #[arg(value_name = "MXC_URI", value_parser = mxc_uri)]
    pub mxc: MxcUri,
}

#[derive(Debug, Args)]
pub struct MediaQuarantineArgs {
    #[command(flatten)]
    pub media: MediaRef,

    /// Lift the quarantine instead.
    #[arg(long)]
    pub release: bool,
}

#[derive(Debug, Args)]
pub struct MediaPurgeArgs {
    /// Server name of the tenant, e.g. `example.org`.
    pub server_name: String,

    /// Purge what was last served longer ago than this: a number with a unit, s, m, h, d or
    /// w, or several (`30d`, `12h`, `1d12h`).
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub older_than: u64,
}

/// A content URI split into the server that created the media and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxcUri {
    pub origin: String,
    pub media_id: String,
}

impl std::fmt::Display for MxcUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mxc://{}/{}", self.origin, self.media_id)
    }
}

/// `--max-users`: the first admin counts, so 0 could never hold.
fn user_quota(value: &str) -> Result<u64, String> {
    positive(
        value,
        "the admin counts as a user; to stop new users use --registration closed",
    )
}

/// `--max-rooms`: a count (0 allows no rooms) or `none`.
fn count_or_none(value: &str) -> Result<CountSetting, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(CountSetting::Unset);
    }
    value
        .parse::<u64>()
        .map(CountSetting::Count)
        .map_err(|error| format!("not a whole number or none ({error})"))
}

/// `--max-messages-per-second`: at least 1 (suspending the tenant is how to stop it), or
/// `none`.
fn message_rate(value: &str) -> Result<CountSetting, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(CountSetting::Unset);
    }
    positive(value, "to stop a tenant, suspend it").map(CountSetting::Count)
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

/// `--max-upload-size`: a size of at least one byte (an upload limit of 0 would refuse every
/// file; a quota is the way to stop uploads), or `default`.
fn upload_size(value: &str) -> Result<SizeSetting, String> {
    if value.eq_ignore_ascii_case("default") {
        return Ok(SizeSetting::Unset);
    }
    match byte_size(value)? {
        0 => Err("must be at least 1 byte (to stop uploads use --media-quota 0)".into()),
        bytes => Ok(SizeSetting::Bytes(bytes)),
    }
}

/// `--media-quota`, `--user-media-quota`: a size (0 allows no media at all) or `none`.
fn quota_size(value: &str) -> Result<SizeSetting, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(SizeSetting::Unset);
    }
    byte_size(value).map(SizeSetting::Bytes)
}

/// Bytes, or a whole number with a binary unit: `k`, `M`, `G` or `T` (any case, optionally
/// followed by `B` or `iB`), so `50M` = `50MiB` = 52428800. Binary because that is how
/// operators read `50M` in other servers' upload limits (Synapse, nginx).
pub fn byte_size(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let hint = "expected bytes or a whole number with a unit, e.g. 1048576, 100k, 50M, 1G";
    if number.is_empty() {
        return Err(format!("{value:?} is not a size ({hint})"));
    }
    // Whole bytes are what the API stores; a fraction of a unit rarely is one.
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{value:?}: use a whole number of a smaller unit, e.g. 1536M for 1.5G"
        ));
    }
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{value:?}: unknown unit ({hint})")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// `--older-than`: one or more `<number><unit>` (s, m, h, d, w) in milliseconds, the unit the
/// API's timestamps use. A bare number is refused: seconds or days are both plausible.
pub fn duration_ms(value: &str) -> Result<u64, String> {
    let hint = "expected a number with a unit s, m, h, d or w, e.g. 30d, 12h, 1d12h";
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(format!("empty duration ({hint})"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let unit = tail.chars().next();
        let secs: u64 = match unit {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            Some('w') => 7 * 86_400,
            _ => return Err(format!("{value:?} is not a duration ({hint})")),
        };
        if number.is_empty() {
            return Err(format!("{value:?} is not a duration ({hint})"));
        }
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(secs * 1000))
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{value:?} is too long"))?;
        rest = &tail[1..];
    }
    Ok(total)
}

/// A content URI as `mxc://<server name>/<media id>`, checked here so that a typo is refused
/// before any request rather than answered with an unknown-media error.
pub fn mxc_uri(value: &str) -> Result<MxcUri, String> {
    let invalid = |why: &str| {
        format!("{value:?} is not a content URI ({why}; expected mxc://<server name>/<media id>)")
    };
    let rest = value
        .strip_prefix("mxc://")
        .ok_or_else(|| invalid("no mxc:// scheme"))?;
    let (origin, media_id) = rest.split_once('/').ok_or_else(|| invalid("no media id"))?;
    if !is_server_name(origin) {
        return Err(invalid("invalid server name"));
    }
    // The spec's media id grammar (Client-Server API, "Content repository"), as the server
    // checks it.
    let valid_id = !media_id.is_empty()
        && media_id.len() <= 255
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_id {
        return Err(invalid(
            "a media id is 1 to 255 of A-Z, a-z, 0-9, _ and - only",
        ));
    }
    Ok(MxcUri {
        origin: origin.to_owned(),
        media_id: media_id.to_owned(),
    })
}

/// The spec's server name (appendix "Server Name"): a DNS name, IPv4 address or bracketed
/// IPv6 address, with an optional port. Loose on the host's own syntax; what matters is that
/// no path, query or space hides in it.
fn is_server_name(name: &str) -> bool {
    let (host_ok, port) = if let Some(v6) = name.strip_prefix('[') {
        let Some((address, rest)) = v6.split_once(']') else {
            return false;
        };
        let port = match rest {
            "" => None,
            _ => match rest.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        let address_ok = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        (address_ok, port)
    } else {
        let (host, port) = match name.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (name, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (host_ok, port)
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
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
    fn sizes_take_bytes_or_binary_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("100k", 100 << 10),
            ("100K", 100 << 10),
            ("50M", 50 << 20),
            ("50m", 50 << 20),
            ("50MB", 50 << 20),
            ("50MiB", 50 << 20),
            ("50 M", 50 << 20),
            ("1G", 1 << 30),
            ("2t", 2 << 40),
            ("12b", 12),
        ] {
            assert_eq!(byte_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "M", "-1", "1.5G", "10X", "10 MiBs", "1e6", "16777216T"] {
            let error = byte_size(bad).expect_err(bad);
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
        assert!(byte_size("1.5G").expect_err("fraction").contains("1536M"));
    }

    #[test]
    fn size_keywords_clear_the_settings() {
        assert_eq!(upload_size("default"), Ok(SizeSetting::Unset));
        assert_eq!(upload_size("1M"), Ok(SizeSetting::Bytes(1 << 20)));
        assert!(
            upload_size("none").is_err(),
            "the upload limit has a default, not none"
        );
        assert!(upload_size("0").is_err());
        assert_eq!(quota_size("none"), Ok(SizeSetting::Unset));
        assert_eq!(quota_size("NONE"), Ok(SizeSetting::Unset));
        assert_eq!(quota_size("0"), Ok(SizeSetting::Bytes(0)));
        assert!(quota_size("default").is_err());
    }

    #[test]
    fn durations_need_units() {
        let (s, h, d) = (1000, 3_600_000, 86_400_000);
        for (text, ms) in [
            ("45s", 45 * s),
            ("90m", 90 * 60 * s),
            ("12h", 12 * h),
            ("30d", 30 * d),
            ("2w", 14 * d),
            ("1d12h", d + 12 * h),
            ("0d", 0),
        ] {
            assert_eq!(duration_ms(text), Ok(ms), "{text}");
        }
        for bad in [
            "",
            "30",
            "d",
            "30x",
            "1d12",
            "-1d",
            "1.5d",
            "30 d",
            "99999999999999999w",
        ] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_uris_split_into_origin_and_id() {
        for (text, origin, media_id) in [
            ("mxc://example.org/AbCd_12-x", "example.org", "AbCd_12-x"),
            ("mxc://localhost:8448/a", "localhost:8448", "a"),
            ("mxc://1.2.3.4/a", "1.2.3.4", "a"),
            ("mxc://[::1]:8448/a", "[::1]:8448", "a"),
            ("mxc://[2001:db8::1]/a", "[2001:db8::1]", "a"),
        ] {
            let uri = mxc_uri(text).expect(text);
            assert_eq!(
                (uri.origin.as_str(), uri.media_id.as_str()),
                (origin, media_id)
            );
            assert_eq!(uri.to_string(), text);
        }
        for bad in [
            "example.org/abc",
            "https://example.org/abc",
            "mxc://example.org",
            "mxc://example.org/",
            "mxc:///abc",
            "mxc://example.org/a/b",
            "mxc://example.org/a?b=c",
            "mxc://example.org/a b",
            "mxc://exa mple.org/a",
            "mxc://example.org:/a",
            "mxc://example.org:http/a",
            "mxc://[::1/a",
            "mxc://[::1]x/a",
            "mxc://[]/a",
            "MXC://example.org/a",
        ] {
            let error = mxc_uri(bad).expect_err(bad);
            assert!(error.contains("mxc://<server name>/<media id>"), "{error}");
        }
        let long = format!("mxc://x.test/{}", "a".repeat(256));
        assert!(mxc_uri(&long).is_err());
    }

    #[test]
    fn tenant_set_takes_media_settings() {
        let cli = Cli::try_parse_from([
            "maas",
            "tenant",
            "set",
            "x.test",
            "--max-upload-size",
            "50M",
            "--media-quota",
            "none",
            "--user-media-quota",
            "1G",
            "--url-previews",
            "on",
            "--freeze-unauthenticated-media",
            "off",
        ])
        .expect("parses");
        let Command::Tenant(TenantCommand::Set(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.max_upload_size, Some(SizeSetting::Bytes(50 << 20)));
        assert_eq!(args.media_quota, Some(SizeSetting::Unset));
        assert_eq!(args.user_media_quota, Some(SizeSetting::Bytes(1 << 30)));
        assert_eq!(args.url_previews, Some(Switch::On));
        assert_eq!(args.freeze_unauthenticated_media, Some(Switch::Off));
        for (flag, value) in [
            ("--max-upload-size", "0"),
            ("--max-upload-size", "none"),
            ("--media-quota", "lots"),
            ("--url-previews", "maybe"),
        ] {
            let argv = ["maas", "tenant", "set", "x.test", flag, value];
            let error = Cli::try_parse_from(argv).expect_err("refused");
            assert!(error.to_string().contains(flag), "{argv:?}: {error}");
        }
    }

    #[test]
    fn media_commands_parse_their_uris_and_durations() {
        let cli = Cli::try_parse_from([
            "maas", "media", "list", "x.test", "--user", "alice", "--from", "1_a", "--limit", "10",
        ])
        .expect("parses");
        let Command::Media(MediaCommand::List(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.user.as_deref(), Some("alice"));
        assert_eq!(args.from.as_deref(), Some("1_a"));
        assert_eq!(args.limit, Some(10));
        for limit in ["0", "1001"] {
            let argv = ["maas", "media", "list", "x.test", "--limit", limit];
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }

        let cli = Cli::try_parse_from(["maas", "media", "delete", "x.test", "mxc://o.test/abc"])
            .expect("parses");
        let Command::Media(MediaCommand::Delete(media)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(media.mxc.origin, "o.test");
        assert_eq!(media.mxc.media_id, "abc");

        let argv = [
            "maas",
            "media",
            "quarantine",
            "x.test",
            "mxc://o.test/abc",
            "--release",
        ];
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Command::Media(MediaCommand::Quarantine(args)) = cli.command else {
            panic!("wrong command");
        };
        assert!(args.release);
        assert_eq!(args.media.mxc.media_id, "abc");

        // A malformed URI is refused by the parser, before any connection.
        for argv in [
            &["maas", "media", "delete", "x.test", "o.test/abc"][..],
            &["maas", "media", "quarantine", "x.test", "mxc://o.test/a/b"][..],
        ] {
            let error = Cli::try_parse_from(argv).expect_err("refused");
            assert!(error.to_string().contains("not a content URI"), "{error}");
        }

        let argv = [
            "maas",
            "media",
            "purge-remote",
            "x.test",
            "--older-than",
            "30d",
        ];
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Command::Media(MediaCommand::PurgeRemote(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.older_than, 30 * 86_400_000);
        assert!(Cli::try_parse_from(["maas", "media", "purge-remote", "x.test"]).is_err());
        let argv = [
            "maas",
            "media",
            "purge-remote",
            "x.test",
            "--older-than",
            "30",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
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
