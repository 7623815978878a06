//! Thumbnails over HTTP (spec: "Thumbnails"): the sizes and methods the spec suggests, never
//! upscaled, animated when asked, and refusals for what isn't an image or is too large to
//! decode safely.

use std::io::Cursor;

use serde_json::json;

use crate::harness::*;
use crate::media::{dimensions, download, png, upload};

fn thumbnail(media_id: &str, query: &str) -> String {
    format!("/_matrix/client/v1/media/thumbnail/localhost/{media_id}?{query}")
}

/// A GIF of `frames` frames, 200×100.
fn animated_gif(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .expect("repeat");
        for i in 0..frames {
            let frame =
                image::RgbaImage::from_pixel(200, 100, image::Rgba([(i * 80) as u8, 0, 0, 255]));
            encoder
                .encode_frame(image::Frame::new(frame))
                .expect("a frame");
        }
    }
    out
}

fn gif_frames(bytes: &[u8]) -> usize {
    use image::AnimationDecoder;
    let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).expect("a GIF");
    decoder.into_frames().count()
}

/// A PNG whose header claims `width`×`height` pixels, with no image data worth the name.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut small = png(1, 1);
    // IHDR's width and height follow the signature (8), the chunk length (4) and type (4);
    // its CRC covers type and data, so it is recomputed.
    small[16..20].copy_from_slice(&width.to_be_bytes());
    small[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&small[12..29]);
    small[29..33].copy_from_slice(&crc.to_be_bytes());
    small
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[tokio::test]
async fn thumbnails_come_at_the_sizes_asked_and_never_upscaled() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let big = upload(&api, png(1000, 500), "image/png", None).await;
    big.resp.ok();

    for (query, expected) in [
        ("width=320&height=240&method=scale", (320, 160)),
        ("width=640&height=480&method=scale", (640, 320)),
        ("width=96&height=96&method=crop", (96, 96)),
        ("width=32&height=32&method=crop", (32, 32)),
        // Between the suggested sizes: the next one up.
        ("width=100&height=100&method=scale", (320, 160)),
        // No method is scale.
        ("width=320&height=240", (320, 160)),
    ] {
        let d = download(&api, &thumbnail(&big.media_id, query)).await;
        assert_eq!(
            d.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&d.bytes)
        );
        assert!(d.header("content-type").starts_with("image/"), "{query}");
        assert_eq!(dimensions(&d.bytes), expected, "{query}");
        assert!(d.header("content-security-policy").contains("sandbox"));
        // Asked again, the kept thumbnail comes back.
        let again = download(&api, &thumbnail(&big.media_id, query)).await;
        assert_eq!(again.bytes, d.bytes, "{query}");
    }

    // Smaller than asked: the original, as it is.
    let small_png = png(20, 10);
    let small = upload(&api, small_png.clone(), "image/png", None).await;
    small.resp.ok();
    let d = download(
        &api,
        &thumbnail(&small.media_id, "width=96&height=96&method=crop"),
    )
    .await;
    assert_eq!((d.status, d.bytes.as_slice()), (200, small_png.as_slice()));
}

#[tokio::test]
async fn animated_thumbnails_only_when_asked() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let gif = upload(&api, animated_gif(3), "image/gif", None).await;
    gif.resp.ok();
    let d = download(
        &api,
        &thumbnail(
            &gif.media_id,
            "width=96&height=96&method=crop&animated=true",
        ),
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.header("content-type"), "image/gif");
    assert_eq!(gif_frames(&d.bytes), 3);
    assert_eq!(dimensions(&d.bytes), (96, 96));
    let d = download(
        &api,
        &thumbnail(&gif.media_id, "width=96&height=96&method=crop"),
    )
    .await;
    assert_eq!(d.status, 200);
    let still = image::load_from_memory(&d.bytes).expect("an image");
    assert_eq!((still.width(), still.height()), (96, 96));
    if d.header("content-type") == "image/gif" {
        assert_eq!(gif_frames(&d.bytes), 1);
    }
}

#[tokio::test]
async fn what_cannot_be_thumbnailed_is_refused() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    let alice = srv.login("localhost", "alice", "pw-alice").await;
    let api = srv.on("localhost").as_user(&alice);

    let text = upload(&api, b"not an image".to_vec(), "text/plain", None).await;
    text.resp.ok();
    let d = download(&api, &thumbnail(&text.media_id, "width=96&height=96")).await;
    assert_eq!(
        (d.status, d.json()["errcode"].clone()),
        (400, json!("M_UNKNOWN"))
    );

    // A decompression bomb: a tiny file claiming 100000×100000 pixels is never decoded.
    let bomb = upload(&api, png_claiming(100_000, 100_000), "image/png", None).await;
    bomb.resp.ok();
    let d = download(&api, &thumbnail(&bomb.media_id, "width=96&height=96")).await;
    assert_eq!(
        (d.status, d.json()["errcode"].clone()),
        (413, json!("M_TOO_LARGE"))
    );

    let good = upload(&api, png(100, 100), "image/png", None).await;
    good.resp.ok();
    for query in [
        "width=0&height=96",
        "width=96&height=96&method=stretch",
        "height=96",
    ] {
        let d = download(&api, &thumbnail(&good.media_id, query)).await;
        assert_eq!(
            d.status,
            400,
            "{query}: {}",
            String::from_utf8_lossy(&d.bytes)
        );
        let errcode = d.json()["errcode"].as_str().unwrap_or_default().to_owned();
        assert!(
            errcode == "M_INVALID_PARAM" || errcode == "M_MISSING_PARAM",
            "{query}: {errcode}"
        );
    }
    let d = download(&api, &thumbnail("unknownmedia", "width=96&height=96")).await;
    assert_eq!(d.status, 404);
    let anon = download(
        &srv.on("localhost"),
        &thumbnail(&good.media_id, "width=96&height=96"),
    )
    .await;
    assert_eq!(anon.status, 401);
}
