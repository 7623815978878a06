//! `maas media …`: list a tenant's uploads, delete and quarantine media, and purge the tenant's
//! cache of other servers' media, through the operator API.

use serde::Deserialize;
use serde_json::{Value, json};

use super::output::{now_ms, size, table, timestamp};
use super::{Ctx, tenant_path};
use crate::cli::{MediaCommand, MediaListArgs, MediaPurgeArgs, MediaQuarantineArgs, MediaRef};
use crate::operator_client::encode;

/// The operator API's media object, as far as the CLI shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Media {
    content_uri: String,
    uploader: String,
    content_type: Option<String>,
    file_name: Option<String>,
    size: u64,
    created_ts: i64,
    quarantined: bool,
    pending: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MediaPage {
    media: Vec<Media>,
    next: Option<String>,
    usage_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Purged {
    deleted: u64,
    deleted_bytes: u64,
}

pub async fn run(ctx: &Ctx, command: MediaCommand) -> anyhow::Result<()> {
    match command {
        MediaCommand::List(args) => list(ctx, args).await,
        MediaCommand::Delete(media) => delete(ctx, &media).await,
        MediaCommand::Quarantine(args) => quarantine(ctx, &args).await,
        MediaCommand::PurgeRemote(args) => purge_remote(ctx, &args).await,
    }
}

fn media_path(server_name: &str) -> String {
    format!("{}/media", tenant_path(server_name))
}

/// `…/media/{origin}/{media_id}`: both parts were checked by clap, but are encoded all the
/// same (an IPv6 origin has `[`, `]` and `:`).
fn item_path(media: &MediaRef) -> String {
    format!(
        "{}/{}/{}",
        media_path(&media.server_name),
        encode(&media.mxc.origin),
        encode(&media.mxc.media_id)
    )
}

/// The `--user` filter as a user id: a bare localpart means a user of the tenant listed.
fn user_id(user: &str, server_name: &str) -> String {
    if user.starts_with('@') {
        user.to_owned()
    } else {
        format!("@{user}:{server_name}")
    }
}

fn list_path(args: &MediaListArgs) -> String {
    let mut query = Vec::new();
    if let Some(user) = &args.user {
        query.push(format!(
            "user_id={}",
            encode(&user_id(user, &args.server_name))
        ));
    }
    if let Some(from) = &args.from {
        query.push(format!("from={}", encode(from)));
    }
    if let Some(limit) = args.limit {
        query.push(format!("limit={limit}"));
    }
    let path = media_path(&args.server_name);
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// One page only (unlike `user list`): a tenant may hold far more uploads than a terminal
/// shows, so the next page is the operator's call, with the printed cursor.
async fn list(ctx: &Ctx, args: MediaListArgs) -> anyhow::Result<()> {
    let answer = ctx.client.get(&list_path(&args)).await?;
    ctx.print(&answer, |page: MediaPage| render_list(&page, &args))
}

fn render_list(page: &MediaPage, args: &MediaListArgs) -> String {
    let mut out = if page.media.is_empty() {
        "No media.\n".to_owned()
    } else {
        let rows: Vec<Vec<String>> = page
            .media
            .iter()
            .map(|m| {
                vec![
                    m.content_uri.clone(),
                    m.uploader.clone(),
                    size(m.size),
                    m.content_type.clone().unwrap_or_default(),
                    m.file_name.clone().unwrap_or_default(),
                    timestamp(m.created_ts),
                    status_of(m).into(),
                ]
            })
            .collect();
        table(
            &[
                "CONTENT URI",
                "UPLOADER",
                "SIZE",
                "TYPE",
                "NAME",
                "CREATED",
                "STATUS",
            ],
            &rows,
        )
    };
    let whose = match &args.user {
        Some(user) => format!(" by {}", user_id(user, &args.server_name)),
        None => String::new(),
    };
    out.push_str(&format!("Stored{whose}: {}\n", size(page.usage_bytes)));
    if let Some(next) = &page.next {
        let mut command = format!("maas media list {}", args.server_name);
        if let Some(user) = &args.user {
            command.push_str(&format!(" --user {user}"));
        }
        if let Some(limit) = args.limit {
            command.push_str(&format!(" --limit {limit}"));
        }
        out.push_str(&format!("Next page: {command} --from {next}\n"));
    }
    out
}

fn status_of(media: &Media) -> &'static str {
    match (media.quarantined, media.pending) {
        (true, _) => "quarantined",
        // Its id was handed out (`/create`) and the bytes have not come yet.
        (false, true) => "pending",
        (false, false) => "stored",
    }
}

async fn delete(ctx: &Ctx, media: &MediaRef) -> anyhow::Result<()> {
    let answer = ctx.client.delete(&item_path(media)).await?;
    ctx.print(&answer, |_: Value| {
        format!(
            "Deleted {} and its thumbnails from {}.\n",
            media.mxc, media.server_name
        )
    })
}

async fn quarantine(ctx: &Ctx, args: &MediaQuarantineArgs) -> anyhow::Result<()> {
    let path = format!("{}/quarantine", item_path(&args.media));
    let body = json!({ "quarantined": !args.release });
    let answer = ctx.client.post(&path, &body).await?;
    let mxc = &args.media.mxc;
    ctx.print(&answer, |_: Value| {
        if args.release {
            format!("Released {mxc} from quarantine: it is served again.\n")
        } else {
            format!("Quarantined {mxc}: it is kept, but served to no one.\n")
        }
    })
}

async fn purge_remote(ctx: &Ctx, args: &MediaPurgeArgs) -> anyhow::Result<()> {
    let before_ts = before_ts(now_ms(), args.older_than)?;
    let path = format!("{}/purge_remote", media_path(&args.server_name));
    let answer = ctx
        .client
        .post(&path, &json!({ "before_ts": before_ts }))
        .await?;
    ctx.print(&answer, |purged: Purged| {
        format!(
            "Purged {} cached remote media ({}) of {} not served since {}.\n",
            purged.deleted,
            size(purged.deleted_bytes),
            args.server_name,
            timestamp(before_ts)
        )
    })
}

/// `--older-than` is relative for convenience; the API takes an absolute time in ms.
fn before_ts(now_ms: i64, older_than_ms: u64) -> anyhow::Result<i64> {
    i64::try_from(older_than_ms)
        .ok()
        .and_then(|age| now_ms.checked_sub(age))
        .ok_or_else(|| anyhow::anyhow!("--older-than is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::MxcUri;

    fn list_args() -> MediaListArgs {
        MediaListArgs {
            server_name: "x.test".into(),
            user: None,
            from: None,
            limit: None,
        }
    }

    #[test]
    fn item_paths_are_encoded() {
        let media = MediaRef {
            server_name: "x.test".into(),
            mxc: MxcUri {
                origin: "[::1]:8448".into(),
                media_id: "AbC_d-1".into(),
            },
        };
        assert_eq!(
            item_path(&media),
            "/tenants/x.test/media/%5B%3A%3A1%5D%3A8448/AbC_d-1"
        );
    }

    #[test]
    fn list_query_has_only_what_was_given() {
        assert_eq!(list_path(&list_args()), "/tenants/x.test/media");
        let args = MediaListArgs {
            user: Some("alice".into()),
            from: Some("1700000000000_AbC".into()),
            limit: Some(10),
            ..list_args()
        };
        assert_eq!(
            list_path(&args),
            "/tenants/x.test/media?user_id=%40alice%3Ax.test&from=1700000000000_AbC&limit=10"
        );
        let args = MediaListArgs {
            user: Some("@bob:other.test".into()),
            ..list_args()
        };
        assert_eq!(
            list_path(&args),
            "/tenants/x.test/media?user_id=%40bob%3Aother.test"
        );
    }

    #[test]
    fn list_shows_status_usage_and_the_next_page() {
        let page = MediaPage {
            media: vec![
                Media {
                    content_uri: "mxc://x.test/a".into(),
                    uploader: "@alice:x.test".into(),
                    size: 2048,
                    content_type: Some("image/png".into()),
                    quarantined: true,
                    ..Media::default()
                },
                Media {
                    content_uri: "mxc://x.test/b".into(),
                    uploader: "@alice:x.test".into(),
                    pending: true,
                    ..Media::default()
                },
            ],
            next: Some("0_b".into()),
            usage_bytes: 2048,
        };
        let args = MediaListArgs {
            user: Some("alice".into()),
            limit: Some(2),
            ..list_args()
        };
        let out = render_list(&page, &args);
        assert!(out.starts_with("CONTENT URI"), "{out}");
        assert!(out.contains("2 KiB  image/png"), "{out}");
        assert!(out.contains("quarantined\n"), "{out}");
        assert!(out.contains("pending\n"), "{out}");
        assert!(out.contains("Stored by @alice:x.test: 2 KiB\n"), "{out}");
        assert!(
            out.contains("Next page: maas media list x.test --user alice --limit 2 --from 0_b\n"),
            "{out}"
        );
        let empty = render_list(&MediaPage::default(), &list_args());
        assert_eq!(empty, "No media.\nStored: 0 B\n");
    }

    #[test]
    fn older_than_becomes_an_absolute_time() {
        let day = 86_400_000;
        assert_eq!(before_ts(30 * day, 30 * 86_400_000).expect("ts"), 0);
        assert_eq!(before_ts(1_000, 400).expect("ts"), 600);
        assert!(before_ts(0, u64::MAX).is_err());
        assert!(before_ts(i64::MIN, 1).is_err());
    }
}
