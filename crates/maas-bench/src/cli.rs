//! The command line (clap derive) and the checks on it that need no network: only loopback
//! URLs are accepted, so a benchmark can never load someone else's server by a typo.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

/// Drives any Matrix homeserver through the public Client-Server API and reports latency,
/// throughput and (with --pid) server memory.
#[derive(Debug, Parser)]
#[command(name = "maas-bench", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Homeserver base URL; its host must be a loopback address or `localhost`.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8008")]
    pub url: String,

    /// Host header to send (maas routes tenants by it).
    #[arg(long, global = true)]
    pub host: Option<String>,

    /// Name printed in results, e.g. "maas" or "synapse" [default: the URL].
    #[arg(long, global = true)]
    pub label: Option<String>,

    /// Register through the m.login.registration_token stage (else m.login.dummy).
    #[arg(long, global = true)]
    pub registration_token: Option<String>,

    /// Server pid: VmRSS/VmHWM from /proc/<pid>/status before and after each scenario.
    #[arg(long, global = true)]
    pub pid: Option<u32>,

    /// Append one JSON object per scenario result to FILE (JSON lines).
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Hard time bound of each scenario [default: 120, tenants: 1800].
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_seconds: Option<u64>,
}

fn positive() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Register N fresh users, one after the other.
    Register(UsersArgs),
    /// Register N users (not timed), then time N password logins.
    Login(UsersArgs),
    /// One user creates M rooms (private_chat preset, with a name).
    CreateRooms(CreateRoomsArgs),
    /// A creator makes a public room; N users join it one after the other.
    Join(UsersArgs),
    /// C users, in one room or spread over R rooms, send K messages in total.
    Send(SendArgs),
    /// User B sends, user A's long-poll /sync receives: delivery latency.
    Fanout(FanoutArgs),
    /// One user in R rooms times N initial /sync requests.
    InitialSync(InitialSyncArgs),
    /// The fanout rounds on the quiet tenant, alone and while another tenant is flooded.
    Neighbours(NeighboursArgs),
    /// C senders here send K messages into a room a user of --peer-url joined over
    /// federation: events per second delivered to the peer.
    Federation(FederationArgs),
    /// A user of --peer-url joins a room of N members here over federation: the join, the
    /// first send, and the time until the peer lists every member.
    RemoteJoin(RemoteJoinArgs),
    /// Media: upload and download throughput of F files, thumbnails of K images (first
    /// request, then cached).
    Media(MediaArgs),
    /// maas only: spawns `maas serve` and measures many tenants (memory, start-up, cold tenants).
    Tenants(TenantsArgs),
    /// register, login, create-rooms, join, send (C=1, C=10), fanout, initial-sync.
    Suite(SuiteArgs),
    /// Per-figure ratios A/B of two result files.
    Compare(CompareArgs),
}

#[derive(Clone, Debug, Args)]
pub struct UsersArgs {
    #[arg(long, default_value_t = 100, value_parser = positive())]
    pub users: u32,
}

#[derive(Clone, Debug, Args)]
pub struct CreateRoomsArgs {
    #[arg(long, default_value_t = 200, value_parser = positive())]
    pub rooms: u32,
    #[arg(long, default_value_t = 10, value_parser = positive())]
    pub concurrency: u32,
}

#[derive(Clone, Debug, Args)]
pub struct SendArgs {
    #[arg(long, default_value_t = 2000, value_parser = positive())]
    pub messages: u32,
    /// Senders, one user each; 1 sends sequentially.
    #[arg(long, default_value_t = 10, value_parser = positive())]
    pub concurrency: u32,
    /// Rooms the senders are spread over (sender i in room i mod R): 1 puts them all in one
    /// room, as a busy room; more lets a server build events of different rooms at once.
    #[arg(long, default_value_t = 1, value_parser = positive())]
    pub rooms: u32,
}

#[derive(Clone, Debug, Args)]
pub struct NeighboursArgs {
    /// Host of the noisy tenant on the same server; it must allow open registration.
    #[arg(long)]
    pub noisy_host: String,
    #[arg(long, default_value_t = 200, value_parser = positive())]
    pub rounds: u32,
    /// Pause between re-arming the long-poll and the send (see `fanout`).
    #[arg(long, default_value_t = 5)]
    pub settle_ms: u64,
    /// Noisy users sending as fast as they can, each into a room of their own.
    #[arg(long, default_value_t = 20)]
    pub flood_senders: u32,
    /// Noisy users doing initial syncs back to back, each in every sender's room.
    #[arg(long, default_value_t = 4)]
    pub flood_syncers: u32,
    /// Noisy registrations back to back (password hashing), one stream each.
    #[arg(long, default_value_t = 2)]
    pub flood_registrations: u32,
}

#[derive(Clone, Debug, Args)]
pub struct FederationArgs {
    /// The receiving homeserver's base URL (loopback only, like --url).
    #[arg(long)]
    pub peer_url: String,
    /// Host header for the peer (maas routes tenants by it).
    #[arg(long)]
    pub peer_host: Option<String>,
    #[arg(long, default_value_t = 2000, value_parser = positive())]
    pub messages: u32,
    #[arg(long, default_value_t = 10, value_parser = positive())]
    pub concurrency: u32,
}

#[derive(Clone, Debug, Args)]
pub struct RemoteJoinArgs {
    /// The joining homeserver's base URL (loopback only, like --url).
    #[arg(long)]
    pub peer_url: String,
    /// Host header for the peer (maas routes tenants by it).
    #[arg(long)]
    pub peer_host: Option<String>,
    /// Members of each room on the server under test, its creator included.
    #[arg(long, default_value_t = 1000, value_parser = positive())]
    pub members: u32,
    /// Rooms, each joined once from the peer: the measurement is repeated on each.
    #[arg(long, default_value_t = 1, value_parser = positive())]
    pub rooms: u32,
    /// Joins in flight while the members join a room (untimed setup).
    #[arg(long, default_value_t = 10, value_parser = positive())]
    pub setup_concurrency: u32,
}

#[derive(Clone, Debug, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 200, value_parser = positive())]
    pub rounds: u32,
    /// Pause between re-arming A's long-poll and B's send, so the poll has reached the server.
    #[arg(long, default_value_t = 5)]
    pub settle_ms: u64,
    /// Other users long-polling `/sync` meanwhile, each in a room of their own that nothing
    /// is sent to: the online users of a tenant that A and B's messages don't concern.
    #[arg(long, default_value_t = 0)]
    pub idle_pollers: u32,
}

#[derive(Clone, Debug, Args)]
pub struct InitialSyncArgs {
    #[arg(long, default_value_t = 300, value_parser = positive())]
    pub rooms: u32,
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub repeats: u32,
    /// Parallel createRoom requests during the (untimed) setup.
    #[arg(long, default_value_t = 10, value_parser = positive())]
    pub setup_concurrency: u32,
    /// Give each request a different no-op filter, so a server's cache of identical /sync
    /// requests (Synapse: `sync_response_cache_duration`) can't answer the repeats.
    #[arg(long)]
    pub distinct_requests: bool,
}

#[derive(Clone, Debug, Args)]
pub struct MediaArgs {
    /// Files uploaded, then downloaded.
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub files: u32,
    /// Bytes of each file (random, made before timing); a plain number or with a suffix:
    /// 512KiB, 10MiB, 1GiB, 10MB.
    #[arg(long, default_value = "10MiB", value_parser = parse_size)]
    pub size: u64,
    /// Requests in flight in every phase (uploads, downloads, thumbnails).
    #[arg(long, default_value_t = 4, value_parser = positive())]
    pub concurrency: u32,
    /// Distinct 2000×1500 images uploaded for the thumbnail figures.
    #[arg(long, default_value_t = 20, value_parser = positive())]
    pub images: u32,
    /// Thumbnail requests once every thumbnail exists (96×96 crop and 320×240 scale in turn).
    #[arg(long, default_value_t = 2000, value_parser = positive())]
    pub thumbnail_requests: u32,
    /// Encoding of the images.
    #[arg(long, value_enum, default_value_t = ImageKind::Jpeg)]
    pub image_format: ImageKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImageKind {
    Jpeg,
    Png,
}

/// A byte count: digits, optionally followed by KiB/MiB/GiB (powers of 1024) or KB/MB/GB
/// (powers of 1000); at least 1.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10485760 or 10MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be at least 1 byte".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large")),
    }
}

#[derive(Clone, Debug, Args)]
pub struct TenantsArgs {
    /// The `maas` binary to spawn.
    #[arg(long, value_name = "PATH")]
    pub maas_bin: PathBuf,
    #[arg(long, default_value_t = 1000, value_parser = positive())]
    pub tenants: u32,
    /// A new or empty directory for the spawned server's data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 8, value_parser = positive())]
    pub create_concurrency: u32,
    /// Tenants whose first request after the restart is timed.
    #[arg(long, default_value_t = 100, value_parser = positive())]
    pub cold_samples: u32,
    /// Idle period after which the server unloads a tenant; 0 skips the idle measurement.
    #[arg(long, default_value_t = 30)]
    pub idle_unload_secs: u64,
    /// argon2 memory cost for the spawned server: this scenario is about memory, not hashing.
    #[arg(long, default_value_t = 1024)]
    pub argon2_memory_kib: u32,
    #[arg(long, default_value_t = 1)]
    pub argon2_iterations: u32,
}

#[derive(Clone, Debug, Args)]
pub struct SuiteArgs {
    /// Multiplies every count of the default suite (users, rooms, messages, rounds, repeats).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

#[derive(Clone, Debug, Args)]
pub struct CompareArgs {
    pub a: PathBuf,
    pub b: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    #[error("--url {0:?} is not a valid URL")]
    Invalid(String),
    #[error("--url must be http:// or https://, not {0}://")]
    Scheme(String),
    #[error(
        "refusing --url host {0:?}: only loopback addresses (127.0.0.0/8, ::1, localhost) may be benchmarked"
    )]
    NotLoopback(String),
}

/// Parses `url` and accepts it only when its host is a loopback address or `localhost`.
pub fn loopback_url(url: &str) -> Result<Url, UrlError> {
    let parsed = Url::parse(url).map_err(|_| UrlError::Invalid(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(parsed.scheme().to_owned()));
    }
    let host = parsed.host_str().unwrap_or_default();
    if is_loopback_host(host) {
        Ok(parsed)
    } else {
        Err(UrlError::NotLoopback(host.to_owned()))
    }
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed from the URL parser.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A default count of the suite multiplied by `scale`, at least 1.
pub fn scaled(count: u32, scale: f64) -> u32 {
    let value = (f64::from(count) * scale).round();
    if value.is_finite() && value >= 1.0 {
        value.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_urls() {
        for url in [
            "http://127.0.0.1:8008",
            "http://127.1.2.3/",
            "http://localhost:8008",
            "https://LOCALHOST",
            "http://[::1]:8008",
        ] {
            assert!(loopback_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "http://example.com",
            "http://10.0.0.1:8008",
            "http://0.0.0.0:8008",
            "http://[::ffff:127.0.0.1]:8008",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
        ] {
            assert!(
                matches!(loopback_url(url), Err(UrlError::NotLoopback(_))),
                "{url}"
            );
        }
        assert!(matches!(
            loopback_url("ftp://127.0.0.1"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            loopback_url("not a url"),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn scaling_rounds_and_never_reaches_zero() {
        assert_eq!(scaled(100, 0.1), 10);
        assert_eq!(scaled(20, 0.01), 1);
        assert_eq!(scaled(200, 1.5), 300);
        assert_eq!(scaled(5, f64::NAN), 1);
    }

    #[test]
    fn cli_shape_parses() {
        let cli = Cli::try_parse_from([
            "maas-bench",
            "--url",
            "http://127.0.0.1:9",
            "--label",
            "maas",
            "send",
            "--messages",
            "5",
            "--concurrency",
            "1",
        ])
        .expect("parse");
        assert!(matches!(
            cli.scenario,
            Scenario::Send(SendArgs {
                messages: 5,
                concurrency: 1,
                rooms: 1
            })
        ));
        assert!(Cli::try_parse_from(["maas-bench", "send", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("10485760"), Ok(10_485_760));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        for bad in [
            "",
            "0",
            "MiB",
            "10 parsecs",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_parses_with_defaults() {
        let cli = Cli::try_parse_from(["maas-bench", "media"]).expect("parse");
        let Scenario::Media(args) = cli.scenario else {
            panic!("not media: {:?}", cli.scenario);
        };
        assert_eq!((args.files, args.size, args.concurrency), (20, 10 << 20, 4));
        assert_eq!((args.images, args.thumbnail_requests), (20, 2000));
        assert_eq!(args.image_format, ImageKind::Jpeg);
        let cli = Cli::try_parse_from([
            "maas-bench",
            "media",
            "--size",
            "1MiB",
            "--image-format",
            "png",
        ])
        .expect("parse");
        let Scenario::Media(args) = cli.scenario else {
            panic!("not media: {:?}", cli.scenario);
        };
        assert_eq!((args.size, args.image_format), (1 << 20, ImageKind::Png));
        assert!(Cli::try_parse_from(["maas-bench", "media", "--images", "0"]).is_err());
    }

    #[test]
    fn remote_join_parses_with_defaults() {
        let cli = Cli::try_parse_from([
            "maas-bench",
            "remote-join",
            "--peer-url",
            "http://127.0.0.1:9",
            "--members",
            "10000",
        ])
        .expect("parse");
        let Scenario::RemoteJoin(args) = cli.scenario else {
            panic!("not remote-join: {:?}", cli.scenario);
        };
        assert_eq!(
            (args.members, args.rooms, args.setup_concurrency),
            (10000, 1, 10)
        );
        assert_eq!(args.peer_host, None);
        assert!(Cli::try_parse_from(["maas-bench", "remote-join", "--members", "1"]).is_err());
    }
}
