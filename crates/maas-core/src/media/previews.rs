//! URL previews (spec: `GET /_matrix/client/v1/media/preview_url`): the page's OpenGraph data
//! as the platform's previewer reads it (`preview`, which keeps requests off private
//! addresses), its image kept as the user's media so clients show it from `mxc://`.

use bytes::Bytes;
use ruma::UserId;

use crate::accounts::AuthedUser;
use serde_json::{Map, Value};

use super::Media;
use super::preview::PreviewError;
use super::upload::{Upload, stored_record};
use crate::store::MediaQuota;
use crate::{Error, Result};

impl Media<'_> {
    /// The preview of `url` for `user`; refused unless both the platform and the tenant turned
    /// previews on.
    pub async fn preview_url(&self, user: &AuthedUser, url: &str) -> Result<Map<String, Value>> {
        let previewer = match self.tenant.previewer()? {
            Some(previewer) if self.tenant.settings().media.url_previews => previewer,
            _ => {
                return Err(Error::NotFound(
                    "URL previews are not enabled on this homeserver".into(),
                ));
            }
        };
        self.take_upload_turn(user)?;
        let preview = previewer.preview(url).await.map_err(refusal)?;
        let mut og = preview.og;
        if let Some(image) = preview.image {
            let (mxc, size) = self
                .keep_preview_image(&user.user_id, &image.content_type, image.bytes)
                .await?;
            og.insert("og:image".into(), Value::String(mxc));
            og.insert("matrix:image:size".into(), Value::from(size));
            og.insert("og:image:type".into(), Value::String(image.content_type));
        }
        Ok(og)
    }

    /// Keeps a preview's image as media of the user who asked; previews count against no
    /// quota (the user didn't choose to store them).
    async fn keep_preview_image(
        &self,
        user: &UserId,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(String, u64)> {
        let received = self.blobs()?.receive_bytes(Bytes::from(bytes)).await?;
        let upload = Upload {
            content_type: Some(content_type),
            file_name: None,
        };
        let record = stored_record(user, &upload, &received);
        let store = self.tenant.store();
        self.keep_received(received, || {
            store.insert_media(&record, MediaQuota::default())
        })
        .await?;
        Ok((self.mxc(&record.media_id).to_string(), record.size))
    }
}

/// The previewer's refusals as the spec's errors: a URL we won't fetch is `403`, one we
/// couldn't is `502`.
fn refusal(error: PreviewError) -> Error {
    match error {
        PreviewError::Disabled => {
            Error::NotFound("URL previews are not enabled on this homeserver".into())
        }
        PreviewError::InvalidUrl(m) => Error::InvalidParam(format!("Invalid URL: {m}")),
        PreviewError::Forbidden(m) => {
            Error::Forbidden(format!("This URL may not be previewed: {m}"))
        }
        PreviewError::TooLarge => Error::RemoteTooLarge("The page is too large to preview".into()),
        PreviewError::Fetch(m) => Error::RemoteUnavailable(format!("Cannot preview the URL: {m}")),
    }
}
