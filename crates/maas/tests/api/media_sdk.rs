//! Media with matrix-sdk as the client: Alice uploads a picture, makes it her avatar and the
//! room's, and sends it as `m.image`; Bob finds all three and downloads the bytes and a
//! thumbnail of the size he asked for, through the authenticated endpoints.

use std::future::IntoFuture;

use matrix_sdk::attachment::AttachmentConfig;
use matrix_sdk::media::{MediaFormat, MediaRequestParameters, MediaThumbnailSettings};
use matrix_sdk::ruma::api::client::room::create_room::v3::Request as CreateRoomRequest;
use matrix_sdk::ruma::events::room::MediaSource;
use matrix_sdk::ruma::media::Method;
use matrix_sdk::ruma::{OwnedMxcUri, UInt};
use serde_json::{Value, json};

use crate::harness::*;
use crate::media::{dimensions, png};
use crate::sdk_rooms::{bounded, sdk_login};

fn plain(uri: &OwnedMxcUri, format: MediaFormat) -> MediaRequestParameters {
    MediaRequestParameters {
        source: MediaSource::Plain(uri.clone()),
        format,
    }
}

/// The state event of `event_type` in the room, as Bob reads it.
async fn state(api: &Api<'_>, room_id: &str, event_type: &str) -> Value {
    api.get(&format!(
        "/_matrix/client/v3/rooms/{}/state/{event_type}/",
        enc(room_id)
    ))
    .await
    .ok()
}

#[tokio::test]
async fn a_picture_becomes_avatar_room_avatar_and_message_and_bob_sees_it() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice").await;
    srv.create_user("localhost", "bob", "pw-bob").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice").await;
    let bob = sdk_login(srv.port, "bob", "pw-bob").await;
    let picture = png(640, 480);

    let uploaded = bounded(
        "upload",
        alice
            .media()
            .upload(&mime::IMAGE_PNG, picture.clone(), None)
            .into_future(),
    )
    .await
    .expect("upload");
    let uri = uploaded.content_uri;
    assert_eq!(uri.server_name().map(|s| s.as_str()), Ok("localhost"));
    bounded("set avatar", alice.account().set_avatar_url(Some(&uri)))
        .await
        .expect("set avatar");

    let mut create = CreateRoomRequest::new();
    create.invite = vec![bob.user_id().expect("bob").to_owned()];
    let room = bounded("create room", alice.create_room(create))
        .await
        .expect("create room");
    let room_id = room.room_id().to_string();
    bounded("room avatar", room.set_avatar_url(&uri, None))
        .await
        .expect("room avatar");
    bounded(
        "send image",
        room.send_attachment(
            "picture.png",
            &mime::IMAGE_PNG,
            picture.clone(),
            AttachmentConfig::new(),
        )
        .into_future(),
    )
    .await
    .expect("send image");

    let bob_api = srv
        .on("localhost")
        .auth(&bob.access_token().expect("token"));
    bob_api
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();

    // Bob sees the avatar in Alice's profile and the room's state …
    let profile = bob_api
        .get(&format!(
            "/_matrix/client/v3/profile/{}",
            enc("@alice:localhost")
        ))
        .await
        .ok();
    assert_eq!(profile["avatar_url"], json!(uri.to_string()));
    let avatar = state(&bob_api, &room_id, "m.room.avatar").await;
    assert_eq!(avatar["url"], json!(uri.to_string()));
    // … and the image message, whose own upload holds the same bytes.
    let messages = bob_api
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20",
            enc(&room_id)
        ))
        .await
        .ok();
    let image = messages["chunk"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["content"]["msgtype"] == "m.image"))
        .cloned()
        .unwrap_or_else(|| panic!("no m.image in {messages}"));
    let image_uri: OwnedMxcUri = image["content"]["url"]
        .as_str()
        .expect("an m.image url")
        .into();

    for shown in [&uri, &image_uri] {
        let bytes = bounded(
            "download",
            bob.media()
                .get_media_content(&plain(shown, MediaFormat::File), false),
        )
        .await
        .expect("download");
        assert_eq!(bytes, picture, "{shown}");
        let settings = MediaThumbnailSettings::with_method(
            Method::Scale,
            UInt::from(320u32),
            UInt::from(240u32),
        );
        let thumbnail = bounded(
            "thumbnail",
            bob.media()
                .get_media_content(&plain(shown, MediaFormat::Thumbnail(settings)), false),
        )
        .await
        .expect("thumbnail");
        assert_eq!(dimensions(&thumbnail), (320, 240), "{shown}");
        let settings =
            MediaThumbnailSettings::with_method(Method::Crop, UInt::from(96u32), UInt::from(96u32));
        let thumbnail = bounded(
            "crop thumbnail",
            bob.media()
                .get_media_content(&plain(shown, MediaFormat::Thumbnail(settings)), false),
        )
        .await
        .expect("crop thumbnail");
        assert_eq!(dimensions(&thumbnail), (96, 96), "{shown}");
    }
}
