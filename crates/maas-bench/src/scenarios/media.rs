//! `media`: the content repository, in five timed phases, each its own result.
//!
//! 1. `media-upload`: F files of S random bytes through `POST /_matrix/media/v3/upload`;
//! 2. `media-download`: the same files through `GET /_matrix/client/v1/media/download/…`
//!    (the deprecated `/_matrix/media/v3/download` only if the server doesn't know v1), each
//!    body read to its end and its length checked;
//! 3. `media-image-upload`: K distinct 2000×1500 images;
//! 4. `media-thumbnail-first`: the first 320×240 `scale` thumbnail request of each image;
//! 5. `media-thumbnail-cached`: R requests for 96×96 `crop` and 320×240 `scale` thumbnails
//!    once every one of them exists.
//!
//! Every phase keeps C requests in flight and reports requests per second, per-request latency
//! and, for bodies, MB/s (10^6 bytes per second of wall time). Servers make thumbnails at
//! different moments — maas on the first request, Synapse (with its default
//! `dynamic_thumbnails: false`) inside the upload request — so phases 3 and 4 are only
//! comparable together; the notes of each result say so.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use rand::{Rng, RngCore};
use serde_json::{Value, json};

use super::{
    Bound, Ctx, WorkQueue, measured, random_lowercase, register_users, spawn_all, warm_up,
};
use crate::cli::{ImageKind, MediaArgs};
use crate::client::{CallError, Fetched, Homeserver, MediaApi, Mxc, ThumbnailSize, Timed};
use crate::report::{Mem, Outcome, read_mem};
use crate::stats::Recorder;

/// The size of a photo from a phone camera of some years ago: large enough that decoding
/// and scaling it is real work, as it is for the pictures people send.
const IMAGE_WIDTH: u32 = 2000;
const IMAGE_HEIGHT: u32 = 1500;
/// Two of the spec's suggested thumbnail sizes, the ones clients ask for most (timeline
/// previews and avatars); both servers keep thumbnails at exactly these sizes.
const SCALED: ThumbnailSize = ThumbnailSize {
    width: 320,
    height: 240,
    method: "scale",
};
const CROPPED: ThumbnailSize = ThumbnailSize {
    width: 96,
    height: 96,
    method: "crop",
};
const MB: f64 = 1_000_000.0;

/// Runs the phases, pushing each result as soon as it exists, so a failure or the time bound
/// keeps what was measured before it. `pid` (the server's) gives each phase its own memory
/// figures.
pub async fn run(
    ctx: &Ctx,
    args: &MediaArgs,
    pid: Option<u32>,
    outcomes: &mut Vec<Outcome>,
) -> anyhow::Result<()> {
    let bound = ctx.bound();
    let user = register_users(ctx, "m", 1, bound).await?.remove(0);
    let token: Arc<str> = user.access_token.into();
    warm_up(&ctx.hs, args.concurrency, bound).await?;
    let hs = ctx.hs.clone();
    let c = args.concurrency;

    // ---- files: upload, then download ----
    let files = Arc::new(random_files(args.files, args.size).await?);
    let mem = Memory::start(pid);
    let uploads = phase(args.files, c, bound, {
        let (hs, token, files, prefix) =
            (hs.clone(), token.clone(), files.clone(), ctx.prefix.clone());
        move |i| {
            let (hs, token, body) = (hs.clone(), token.clone(), files[i as usize].clone());
            let name = format!("bench-{prefix}-{i}.bin");
            async move { upload(&hs, &token, body, "application/octet-stream", &name).await }
        }
    })
    .await?;
    let mut out = Outcome::new(
        "media-upload",
        json!({"files": args.files, "size_bytes": args.size, "concurrency": c}),
    );
    let uploaded: Vec<Mxc> = uploads.done.iter().map(|(_, mxc)| mxc.clone()).collect();
    let bytes = args.size * uploaded.len() as u64;
    uploads.into_outcome(&mut out, mem.end());
    set_rate(&mut out, bytes);
    finish(&mut out, args.files);
    outcomes.push(out);

    let Some(first) = uploaded.first() else {
        anyhow::bail!("no upload succeeded; nothing to download or thumbnail");
    };
    let api = media_api(&hs, &token, &first.server_name).await?;
    let mem = Memory::start(pid);
    let expected = args.size;
    let uploaded = Arc::new(uploaded);
    let downloads = phase(len_u32(uploaded.len()), c, bound, {
        let (hs, token, uploaded) = (hs.clone(), token.clone(), uploaded.clone());
        move |i| {
            let (hs, token, uploaded) = (hs.clone(), token.clone(), uploaded.clone());
            async move {
                let media = &uploaded[i as usize];
                let fetched = hs.download(&token, api, media).await?;
                if fetched.value.length != expected {
                    return Err(CallError::Protocol(format!(
                        "download of {} gave {} bytes, {expected} were uploaded",
                        media.media_id, fetched.value.length
                    )));
                }
                Ok(fetched)
            }
        }
    })
    .await?;
    let mut out = Outcome::new(
        "media-download",
        json!({"files": args.files, "size_bytes": args.size, "concurrency": c}),
    );
    let bytes = downloads.done.iter().map(|(_, f)| f.length).sum();
    let attempted = len_u32(uploaded.len());
    downloads.into_outcome(&mut out, mem.end());
    set_rate(&mut out, bytes);
    out.extra("media_api", api.as_str());
    finish(&mut out, attempted);
    outcomes.push(out);
    // The files are no longer needed; the images below would otherwise sit next to them.
    drop(files);

    // ---- images: upload, first thumbnail, cached thumbnails ----
    let images = Arc::new(make_images(args.images, args.image_format).await?);
    let (content_type, extension) = match args.image_format {
        ImageKind::Jpeg => ("image/jpeg", "jpg"),
        ImageKind::Png => ("image/png", "png"),
    };
    let mem = Memory::start(pid);
    let image_uploads = phase(args.images, c, bound, {
        let (hs, token, images, prefix) = (
            hs.clone(),
            token.clone(),
            images.clone(),
            ctx.prefix.clone(),
        );
        move |i| {
            let (hs, token, body) = (hs.clone(), token.clone(), images[i as usize].clone());
            let name = format!("bench-{prefix}-{i}.{extension}");
            async move { upload(&hs, &token, body, content_type, &name).await }
        }
    })
    .await?;
    let mut out = Outcome::new(
        "media-image-upload",
        json!({
            "images": args.images,
            "format": content_type,
            "width": IMAGE_WIDTH,
            "height": IMAGE_HEIGHT,
            "concurrency": c,
        }),
    );
    let bytes: u64 = image_uploads
        .done
        .iter()
        .map(|(i, _)| images[*i as usize].len() as u64)
        .sum();
    let image_bytes: u64 = images.iter().map(|b| b.len() as u64).sum();
    out.extra(
        "image_bytes_mean",
        image_bytes as f64 / images.len().max(1) as f64,
    );
    let pictures: Vec<Mxc> = image_uploads.done.iter().map(|(_, m)| m.clone()).collect();
    image_uploads.into_outcome(&mut out, mem.end());
    set_rate(&mut out, bytes);
    out.extra(
        "note",
        "Synapse (dynamic_thumbnails: false, its default) makes its 5 standard thumbnails \
         inside the upload request; maas stores the bytes only and makes a thumbnail on its \
         first request",
    );
    finish(&mut out, args.images);
    outcomes.push(out);
    drop(images);
    if pictures.is_empty() {
        anyhow::bail!("no image upload succeeded; nothing to thumbnail");
    }
    let pictures = Arc::new(pictures);
    let n_pictures = len_u32(pictures.len());

    let thumbnails = |sizes: &'static [ThumbnailSize]| {
        let (hs, token, pictures) = (hs.clone(), token.clone(), pictures.clone());
        move |i: u32| {
            let (hs, token, pictures) = (hs.clone(), token.clone(), pictures.clone());
            // Request i: image i mod K, size (i div K) mod |sizes|, so consecutive requests
            // hit different images and every pair (image, size) comes up equally often.
            let media_index = (i % n_pictures) as usize;
            let size = sizes[((i / n_pictures) as usize) % sizes.len()];
            async move { thumbnail(&hs, &token, api, &pictures[media_index], size).await }
        }
    };

    let mem = Memory::start(pid);
    let first = phase(n_pictures, c, bound, thumbnails(&[SCALED])).await?;
    let mut out = Outcome::new(
        "media-thumbnail-first",
        json!({
            "images": n_pictures,
            "width": SCALED.width,
            "height": SCALED.height,
            "method": SCALED.method,
            "concurrency": c,
        }),
    );
    thumbnail_sizes(&mut out, &first.done);
    first.into_outcome(&mut out, mem.end());
    out.extra(
        "note",
        "first request of each image's 320x240 thumbnail: maas makes it now; Synapse made it \
         during the upload, so it only looks it up",
    );
    finish(&mut out, n_pictures);
    outcomes.push(out);

    // Untimed: maas has made only the 320×240 thumbnails so far; the timed phase below must
    // find every thumbnail it asks for already made, on either server.
    let warm = phase(n_pictures, c, bound, thumbnails(&[CROPPED])).await?;
    let mem = Memory::start(pid);
    let cached = phase(
        args.thumbnail_requests,
        c,
        bound,
        thumbnails(&[CROPPED, SCALED]),
    )
    .await?;
    let mut out = Outcome::new(
        "media-thumbnail-cached",
        json!({
            "requests": args.thumbnail_requests,
            "images": n_pictures,
            "sizes": ["96x96 crop", "320x240 scale"],
            "concurrency": c,
        }),
    );
    thumbnail_sizes(&mut out, &cached.done);
    cached.into_outcome(&mut out, mem.end());
    if warm.rec.errors() > 0 {
        // A thumbnail that could not be made before the timed phase fails there too; its
        // first failure is the one worth reading.
        out.rec.merge_errors(&warm.rec);
        out.extra("warm_up_errors", warm.rec.errors());
    }
    out.extra(
        "note",
        "every requested thumbnail existed before timing (96x96 crop made untimed on maas)",
    );
    finish(&mut out, args.thumbnail_requests);
    outcomes.push(out);
    Ok(())
}

/// What a phase measured and the values of its successful operations, by index.
struct Phase<T> {
    rec: Recorder,
    done: Vec<(u32, T)>,
    duration: Duration,
    truncated: bool,
}

impl<T> Phase<T> {
    fn into_outcome(self, out: &mut Outcome, mem: Option<(Option<Mem>, Option<Mem>)>) {
        out.rec = self.rec;
        out.duration = self.duration;
        out.mem = mem;
        if self.truncated {
            out.extra("stopped_by_time_bound", true);
        }
    }
}

/// Runs `op(0..total)` with `concurrency` operations in flight until done or out of time;
/// every operation is timed by [`measured`].
async fn phase<T, F, Fut>(
    total: u32,
    concurrency: u32,
    bound: Bound,
    op: F,
) -> anyhow::Result<Phase<T>>
where
    T: Send + 'static,
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Timed<T>, CallError>> + Send,
{
    let op = Arc::new(op);
    let queue = WorkQueue::new(total, bound);
    let start = Instant::now();
    let workers = (0..concurrency.min(total)).map(|_| {
        let (op, queue) = (op.clone(), queue.clone());
        async move {
            let mut rec = Recorder::default();
            let mut done = Vec::new();
            while let Some(i) = queue.take() {
                if let Some(timed) = measured(&mut rec, bound, || op(i)).await {
                    done.push((i, timed.value));
                }
            }
            (rec, done)
        }
    });
    let results = spawn_all(workers).await?;
    let duration = start.elapsed();
    let mut rec = Recorder::default();
    let mut done = Vec::new();
    for (worker_rec, worker_done) in results {
        rec.merge(worker_rec);
        done.extend(worker_done);
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(Phase {
        rec,
        done,
        duration,
        truncated: queue.truncated(),
    })
}

async fn upload(
    hs: &Homeserver,
    token: &str,
    body: Bytes,
    content_type: &str,
    name: &str,
) -> Result<Timed<Mxc>, CallError> {
    let timed = hs.upload(token, body, content_type, name).await?;
    let mxc = Mxc::parse(&timed.value)?;
    Ok(timed.map(|_| mxc))
}

/// A thumbnail request that counts only when it answers 200 with a non-empty image.
async fn thumbnail(
    hs: &Homeserver,
    token: &str,
    api: MediaApi,
    media: &Mxc,
    size: ThumbnailSize,
) -> Result<Timed<Fetched>, CallError> {
    let fetched = hs.thumbnail(token, api, media, size).await?;
    let what = || {
        format!(
            "thumbnail {}x{} {} of {}",
            size.width, size.height, size.method, media.media_id
        )
    };
    let answer = &fetched.value;
    if answer.status != 200 {
        return Err(CallError::Protocol(format!(
            "{} answered {}, not 200",
            what(),
            answer.status
        )));
    }
    if answer.length == 0 {
        return Err(CallError::Protocol(format!("{} has an empty body", what())));
    }
    if !answer
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("image/"))
    {
        return Err(CallError::Protocol(format!(
            "{} has content type {:?}, not an image",
            what(),
            answer.content_type
        )));
    }
    Ok(fetched)
}

/// Which download and thumbnail endpoints the server has: a download of a media id that
/// doesn't exist answers M_NOT_FOUND where the authenticated endpoints exist and 404
/// M_UNRECOGNIZED (unknown endpoint) where they don't.
async fn media_api(hs: &Homeserver, token: &str, server_name: &str) -> anyhow::Result<MediaApi> {
    let probe = Mxc {
        server_name: server_name.to_owned(),
        media_id: format!("maasbenchprobe{}", random_lowercase(16)),
    };
    match hs.download(token, MediaApi::Authenticated, &probe).await {
        Err(CallError::Status {
            status: 404, body, ..
        }) if errcode(&body).as_deref() == Some("M_UNRECOGNIZED") => {
            eprintln!(
                "media: the server doesn't know /_matrix/client/v1/media; using the deprecated /_matrix/media/v3"
            );
            Ok(MediaApi::Legacy)
        }
        Err(CallError::Status { .. }) | Ok(_) => Ok(MediaApi::Authenticated),
        Err(e) => Err(e).context("probing the media download endpoint"),
    }
}

fn errcode(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("errcode")?
        .as_str()
        .map(str::to_owned)
}

/// `files` buffers of `size` random bytes: incompressible, so no layer on the way can make
/// the transfer cheaper than the size says.
async fn random_files(files: u32, size: u64) -> anyhow::Result<Vec<Bytes>> {
    let size = usize::try_from(size).context("--size does not fit in memory")?;
    let total = size
        .checked_mul(files as usize)
        .context("--files × --size does not fit in memory")?;
    eprintln!(
        "media: making {files} random files of {size} bytes ({:.1} MB in memory)",
        total as f64 / MB
    );
    let made = (0..files).map(|_| {
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; size];
            rand::thread_rng().fill_bytes(&mut buf);
            Bytes::from(buf)
        })
    });
    let mut out = Vec::with_capacity(files as usize);
    for handle in made {
        out.push(handle.await.context("making a random file panicked")?);
    }
    Ok(out)
}

/// `count` distinct encoded images, made on every core before anything is timed.
async fn make_images(count: u32, kind: ImageKind) -> anyhow::Result<Vec<Bytes>> {
    eprintln!("media: making {count} images of {IMAGE_WIDTH}x{IMAGE_HEIGHT} ({kind:?})");
    let seeds: Vec<u64> = (0..count).map(|_| rand::thread_rng().r#gen()).collect();
    let made = seeds
        .into_iter()
        .map(|seed| tokio::task::spawn_blocking(move || encode_image(seed, kind)));
    let mut out = Vec::with_capacity(count as usize);
    for handle in made {
        out.push(handle.await.context("making an image panicked")??);
    }
    Ok(out)
}

/// A picture with what makes a photo expensive to decode and scale: no flat areas (per-pixel
/// noise over gradients) and edges. The seed makes each one different, so no server can
/// deduplicate them.
fn encode_image(seed: u64, kind: ImageKind) -> anyhow::Result<Bytes> {
    let mut state = seed | 1;
    let [r0, g0, b0, stripe, ..] = seed.to_le_bytes();
    let stripe = u32::from(stripe) % 64 + 16;
    let picture = RgbImage::from_fn(IMAGE_WIDTH, IMAGE_HEIGHT, |x, y| {
        // xorshift64: cheap noise, the image crate's pixel loop stays the cost.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 0x1f) as u32;
        let band = if (x / stripe + y / stripe) % 2 == 0 {
            40
        } else {
            0
        };
        let r = (x * 255 / IMAGE_WIDTH + u32::from(r0) + noise) % 256;
        let g = (y * 255 / IMAGE_HEIGHT + u32::from(g0) + band) % 256;
        let b = ((x + y) * 255 / (IMAGE_WIDTH + IMAGE_HEIGHT) + u32::from(b0) + noise / 2) % 256;
        Rgb([r as u8, g as u8, b as u8])
    });
    let format = match kind {
        ImageKind::Jpeg => ImageFormat::Jpeg,
        ImageKind::Png => ImageFormat::Png,
    };
    let mut encoded = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut encoded, format)
        .context("encoding a bench image")?;
    Ok(Bytes::from(encoded.into_inner()))
}

/// The server's memory before a phase, to pair with the reading after it.
struct Memory {
    pid: Option<u32>,
    before: Option<Mem>,
}

impl Memory {
    fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            before: pid.and_then(read_mem),
        }
    }

    /// `None` without a pid, so the runner's own (also empty) reading applies.
    fn end(&self) -> Option<(Option<Mem>, Option<Mem>)> {
        let pid = self.pid?;
        Some((self.before, read_mem(pid)))
    }
}

fn set_rate(out: &mut Outcome, bytes: u64) {
    let seconds = out.duration.as_secs_f64();
    out.extra("bytes_total", bytes);
    if seconds > 0.0 {
        out.extra("mb_per_s", bytes as f64 / MB / seconds);
    }
}

/// Mean size and the content types of the thumbnails received: servers differ in the format
/// and quality they encode thumbnails at, which the byte counts make visible.
fn thumbnail_sizes(out: &mut Outcome, done: &[(u32, Fetched)]) {
    if !done.is_empty() {
        let total: u64 = done.iter().map(|(_, f)| f.length).sum();
        out.extra("response_bytes_mean", total as f64 / done.len() as f64);
    }
    let types: BTreeSet<&str> = done
        .iter()
        .filter_map(|(_, f)| f.content_type.as_deref())
        .collect();
    out.extra(
        "content_types",
        types.into_iter().collect::<Vec<_>>().join(","),
    );
}

/// Marks a phase with failed requests, so nobody reads its figures as a clean run.
fn finish(out: &mut Outcome, attempted: u32) {
    let errors = out.rec.errors();
    if errors > 0 {
        let warning = format!("{errors} FAILED request(s) of {attempted}");
        eprintln!("!!! {}: {warning}", out.scenario);
        out.extra("warning", warning);
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_decode_at_their_size_and_differ() {
        for kind in [ImageKind::Jpeg, ImageKind::Png] {
            let a = encode_image(1, kind).expect("encode");
            let b = encode_image(2, kind).expect("encode");
            assert_ne!(a, b);
            let decoded = image::load_from_memory(&a).expect("decode");
            assert_eq!(
                (decoded.width(), decoded.height()),
                (IMAGE_WIDTH, IMAGE_HEIGHT)
            );
        }
    }

    #[test]
    fn errcodes_are_read_from_matrix_errors() {
        assert_eq!(
            errcode(r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#).as_deref(),
            Some("M_UNRECOGNIZED")
        );
        assert_eq!(errcode("<html>"), None);
    }
}
