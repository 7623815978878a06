//! Whether an archive agrees with itself, checked while it is imported: the server name of its
//! header is the one its signing keys sign its events as, and the one its users' keys name.
//! The checksum only shows that an archive is the file that was written; these checks catch
//! one whose header was edited (the tenant renamed by hand) or whose tables were put together
//! from several tenants, which would otherwise import "fine" and serve events and keys under a
//! server name that isn't theirs.
//!
//! What is checked, and its cost:
//! - `signing_keys`: at least one key, each a readable ed25519 key (a few keys).
//! - `events`, every event (string work only): an event of a local sender is signed by one of
//!   the archive's key ids under the header's server name; no event carries a signature by one
//!   of the archive's keys under another server name. A key id can be shared by chance with a
//!   remote server (`ed25519:a_XXXX` ids are short), so a signature under another name counts
//!   only once it verifies with our key; that costs one verification per (server, key id).
//! - `events`, a bounded sample (cryptography): the signatures of the first
//!   [`VERIFY_FIRST`] local events and of one in [`VERIFY_EVERY`] after them verify with the
//!   archive's keys. A wrong key shows at the first event already, since all of them are signed
//!   with it; verifying every event of a large tenant would cost minutes of CPU without telling
//!   more, and the checksum already vouches for every byte. (Whoever holds an archive holds the
//!   private key too and could re-sign everything: these checks catch mistakes, not forgeries.)
//! - `device_keys` and `cross_signing_keys`, every row: the key's `user_id` is the row's user
//!   on the header's server (this is what a tenant without events still names its server by).
//! - `media`, `remote_media` and `media_thumbnails`, every row: it names a blob by a SHA-256,
//!   with the same size as every other row naming it; each blob the archive carries is one
//!   they name, and comes once. A named blob that doesn't come is only warned about: an export
//!   skips a blob deleted between its snapshot and the moment its bytes were read.
//!
//! Memory stays bounded: the keys, the distinct room versions, the (server, key id) pairs
//! already verified, and the distinct blobs the media tables name (a digest and a size each).

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ruma::RoomVersionId;
use ruma::canonical_json::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, PublicKeySet, verify_event};
use serde::Deserialize;
use serde_json::Value;

use super::media::{BlobRef, blob_refs};
use crate::store::TableRows;
use crate::{Error, Result};

/// Local events whose signatures are all verified, from the first.
pub(crate) const VERIFY_FIRST: u64 = 100;
/// After those, one local event in this many is verified.
pub(crate) const VERIFY_EVERY: u64 = 1000;

fn disagree(message: String) -> Error {
    Error::InvalidParam(format!("The archive disagrees with itself: {message}"))
}

/// The parts of a stored PDU the checks read.
#[derive(Deserialize)]
struct Signed {
    #[serde(default)]
    signatures: BTreeMap<String, BTreeMap<String, serde::de::IgnoredAny>>,
}

/// The consistency of one archive, fed its chunks in order.
pub(crate) struct Consistency {
    server_name: String,
    /// The archive's public keys by key id.
    keys: PublicKeySet,
    /// Room versions of the archive's rooms, distinct, in the order seen.
    room_versions: Vec<RoomVersionId>,
    /// Local events seen.
    local_events: u64,
    /// Whether a signature by one of our key ids under another server name verified with our
    /// key: `(server, key id)`, checked once each.
    foreign_checked: HashMap<(String, String), bool>,
    /// The blobs the media tables name, by SHA-256.
    blobs: HashMap<String, NamedBlob>,
}

/// A blob the media tables name.
struct NamedBlob {
    /// The size their rows give it.
    size: u64,
    /// Whether the archive carried it.
    came: bool,
}

impl Consistency {
    pub(crate) fn new(server_name: &str) -> Self {
        Self {
            server_name: server_name.to_owned(),
            keys: PublicKeySet::new(),
            room_versions: Vec::new(),
            local_events: 0,
            foreign_checked: HashMap::new(),
            blobs: HashMap::new(),
        }
    }

    pub(crate) fn chunk(&mut self, chunk: &TableRows) -> Result<()> {
        match chunk.table.as_str() {
            "signing_keys" => self.signing_keys(chunk),
            "rooms" => self.rooms(chunk),
            "events" => self.events(chunk),
            "device_keys" => self.user_keys(chunk, "keys_json"),
            "cross_signing_keys" => self.user_keys(chunk, "key_json"),
            "media" | "remote_media" | "media_thumbnails" => self.media(chunk),
            _ => Ok(()),
        }
    }

    /// Blob `sha256` comes now: the size the media tables give it. Refused when none of them
    /// names it (an archive carries a tenant's own media only) or when it came already.
    pub(crate) fn blob(&mut self, sha256: &str) -> Result<u64> {
        let Some(named) = self.blobs.get_mut(sha256) else {
            return Err(Error::InvalidParam(format!(
                "The archive is corrupted: it holds blob {sha256}, which none of its media \
                 records names"
            )));
        };
        if named.came {
            return Err(Error::InvalidParam(format!(
                "The archive is corrupted: it holds blob {sha256} twice"
            )));
        }
        named.came = true;
        Ok(named.size)
    }

    /// After the last chunk and blob.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.keys.is_empty() {
            return Err(disagree(format!(
                "it holds no signing key for {}",
                self.server_name
            )));
        }
        // Not refused: the export skips blobs deleted after its snapshot, whose records it
        // carries all the same. Those media are gone (a download finds no bytes), as they
        // would have been on the old server.
        let missing: Vec<&str> = self
            .blobs
            .iter()
            .filter(|(_, named)| !named.came)
            .map(|(sha256, _)| sha256.as_str())
            .collect();
        if let Some(first) = missing.first() {
            tracing::warn!(
                server_name = %self.server_name,
                missing = missing.len(),
                first,
                "the archive lacks the bytes of some of its media"
            );
        }
        Ok(())
    }

    /// Media records name blobs, and agree on their sizes.
    fn media(&mut self, chunk: &TableRows) -> Result<()> {
        for BlobRef { sha256, size } in blob_refs(chunk).map_err(disagree)? {
            match self.blobs.get(sha256) {
                Some(named) if named.size != size => {
                    return Err(disagree(format!(
                        "{} gives blob {sha256} {size} bytes, another media record {}",
                        chunk.table, named.size
                    )));
                }
                Some(_) => {}
                None => {
                    let named = NamedBlob { size, came: false };
                    self.blobs.insert(sha256.to_owned(), named);
                }
            }
        }
        Ok(())
    }

    fn signing_keys(&mut self, chunk: &TableRows) -> Result<()> {
        let (ids, pkcs8) = (column(chunk, "key_id")?, column(chunk, "pkcs8")?);
        for row in &chunk.rows {
            let key_id = row[ids].as_str().unwrap_or_default();
            let public = public_key(key_id, &row[pkcs8])
                .ok_or_else(|| disagree(format!("signing key {key_id:?} is not an ed25519 key")))?;
            self.keys.insert(key_id.to_owned(), public);
        }
        Ok(())
    }

    fn rooms(&mut self, chunk: &TableRows) -> Result<()> {
        let versions = column(chunk, "room_version")?;
        for row in &chunk.rows {
            let version = row[versions]
                .as_str()
                .and_then(|v| RoomVersionId::try_from(v).ok())
                .ok_or_else(|| disagree(format!("room version {} is invalid", row[versions])))?;
            if !self.room_versions.contains(&version) {
                self.room_versions.push(version);
            }
        }
        Ok(())
    }

    fn events(&mut self, chunk: &TableRows) -> Result<()> {
        let (ids, senders, pdus) = (
            column(chunk, "event_id")?,
            column(chunk, "sender")?,
            column(chunk, "pdu")?,
        );
        for row in &chunk.rows {
            let event_id = row[ids].as_str().unwrap_or_default();
            let sender = row[senders].as_str().unwrap_or_default();
            let pdu = row[pdus].as_str().unwrap_or_default();
            self.event(event_id, sender, pdu)?;
        }
        Ok(())
    }

    fn event(&mut self, event_id: &str, sender: &str, pdu: &str) -> Result<()> {
        let signed: Signed = serde_json::from_str(pdu)
            .map_err(|e| disagree(format!("event {event_id} is not a PDU ({e})")))?;
        for (server, key_ids) in &signed.signatures {
            if *server == self.server_name {
                continue;
            }
            let ours: Vec<&String> = key_ids
                .keys()
                .filter(|k| self.keys.contains_key(*k))
                .collect();
            for key_id in ours {
                if self.signed_by_us_as(server, key_id, pdu)? {
                    return Err(disagree(format!(
                        "its header names server {}, but its signing key {key_id} signed event \
                         {event_id} as {server}",
                        self.server_name
                    )));
                }
            }
        }
        if server_of(sender) != Some(self.server_name.as_str()) {
            return Ok(());
        }
        let ours = signed
            .signatures
            .get(&self.server_name)
            .is_some_and(|ids| ids.keys().any(|k| self.keys.contains_key(k)));
        if !ours {
            return Err(disagree(format!(
                "event {event_id} of {sender} is not signed by any of its signing keys ({})",
                self.keys.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        self.local_events += 1;
        let n = self.local_events;
        if (n <= VERIFY_FIRST || n.is_multiple_of(VERIFY_EVERY))
            && !self.verifies(&self.server_name, pdu)?
        {
            return Err(disagree(format!(
                "the signature of event {event_id} by {} does not verify with its signing keys",
                self.server_name
            )));
        }
        Ok(())
    }

    /// Whether `pdu`'s signature by `key_id` under `server` is one of our key's: once per
    /// (server, key id).
    fn signed_by_us_as(&mut self, server: &str, key_id: &str, pdu: &str) -> Result<bool> {
        let pair = (server.to_owned(), key_id.to_owned());
        if let Some(known) = self.foreign_checked.get(&pair) {
            return Ok(*known);
        }
        let ours = self.verifies(server, pdu)?;
        self.foreign_checked.insert(pair, ours);
        Ok(ours)
    }

    /// Whether `pdu` verifies as signed by `server` with the archive's keys, under the rules
    /// of one of the archive's room versions (the event's own room is not looked up: that
    /// would mean holding every room's version).
    fn verifies(&self, server: &str, pdu: &str) -> Result<bool> {
        let object: CanonicalJsonObject = serde_json::from_str(pdu)
            .map_err(|e| disagree(format!("a stored PDU is not canonical JSON ({e})")))?;
        let mut map = PublicKeyMap::new();
        map.insert(server.to_owned(), self.keys.clone());
        Ok(self
            .room_versions
            .iter()
            .filter_map(RoomVersionId::rules)
            .any(|rules| verify_event(&map, &object, &rules).is_ok()))
    }

    /// Each key names its row's user on the header's server.
    fn user_keys(&self, chunk: &TableRows, json_column: &str) -> Result<()> {
        let (localparts, keys) = (column(chunk, "localpart")?, column(chunk, json_column)?);
        for row in &chunk.rows {
            let localpart = row[localparts].as_str().unwrap_or_default();
            let expected = format!("@{localpart}:{}", self.server_name);
            let named = row[keys]
                .as_str()
                .and_then(|json| serde_json::from_str::<Value>(json).ok())
                .and_then(|key| {
                    key.get("user_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            if named.as_deref() != Some(expected.as_str()) {
                return Err(disagree(format!(
                    "{} of {localpart} names {}, but its header names server {}",
                    chunk.table,
                    named.as_deref().unwrap_or("no user"),
                    self.server_name
                )));
            }
        }
        Ok(())
    }
}

/// Where `name` is among the chunk's columns.
fn column(chunk: &TableRows, name: &str) -> Result<usize> {
    chunk
        .columns
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| disagree(format!("{} has no column {name}", chunk.table)))
}

/// The server name of a user id: everything after the first colon (a localpart has none; a
/// server name may have a port).
fn server_of(user_id: &str) -> Option<&str> {
    user_id.strip_prefix('@')?.split_once(':').map(|(_, s)| s)
}

/// The public half of an archived signing key (`{"$bytes": "<base64 PKCS#8>"}`).
fn public_key(key_id: &str, pkcs8: &Value) -> Option<Base64> {
    let version = key_id.strip_prefix("ed25519:")?;
    let der = STANDARD.decode(pkcs8.get("$bytes")?.as_str()?).ok()?;
    let pair = Ed25519KeyPair::from_der(&der, version.to_owned()).ok()?;
    Some(Base64::new(pair.public_key().to_vec()))
}

#[cfg(test)]
mod tests {
    use ruma::canonical_json::CanonicalJsonValue;
    use ruma::signatures::hash_and_sign_event;
    use serde_json::json;

    use super::*;

    /// Key id shared by "our" key and a remote server's, as short random ids may be.
    const KEY_ID: &str = "ed25519:a_Same";

    fn key() -> Vec<u8> {
        Ed25519KeyPair::generate().to_vec()
    }

    fn chunk(table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> TableRows {
        TableRows {
            table: table.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        }
    }

    fn keys_chunk(pkcs8: &[u8]) -> TableRows {
        chunk(
            "signing_keys",
            &["key_id", "pkcs8", "created_ts"],
            vec![vec![
                json!(KEY_ID),
                json!({"$bytes": STANDARD.encode(pkcs8)}),
                json!(1),
            ]],
        )
    }

    fn rooms_chunk() -> TableRows {
        chunk(
            "rooms",
            &["room_id", "room_version"],
            vec![vec![json!("!r:a.test"), json!("11")]],
        )
    }

    /// A message of `sender`, signed as `server` with `pkcs8`.
    fn event(sender: &str, server: &str, pkcs8: &[u8]) -> Vec<Value> {
        let pdu = json!({
            "auth_events": [], "content": {"body": "hi", "msgtype": "m.text"}, "depth": 1,
            "origin_server_ts": 1, "prev_events": [], "room_id": "!r:a.test",
            "sender": sender, "type": "m.room.message",
        });
        let mut object: CanonicalJsonObject = serde_json::from_value(pdu).expect("object");
        let pair = Ed25519KeyPair::from_der(pkcs8, "a_Same".into()).expect("key");
        let rules = RoomVersionId::V11.rules().expect("rules");
        hash_and_sign_event(server, &pair, &mut object, &rules.redaction).expect("sign");
        let text = serde_json::to_string(&CanonicalJsonValue::Object(object)).expect("json");
        vec![json!("$e"), json!(sender), json!(text)]
    }

    fn events_chunk(rows: Vec<Vec<Value>>) -> TableRows {
        chunk("events", &["event_id", "sender", "pdu"], rows)
    }

    fn check(server_name: &str, chunks: &[TableRows]) -> Result<()> {
        let mut consistency = Consistency::new(server_name);
        for c in chunks {
            consistency.chunk(c)?;
        }
        consistency.finish()
    }

    #[test]
    fn own_and_remote_events_agree_with_the_header() {
        let (ours, theirs) = (key(), key());
        let chunks = [
            keys_chunk(&ours),
            rooms_chunk(),
            events_chunk(vec![
                event("@a:a.test", "a.test", &ours),
                // A remote server whose key happens to have our key's id.
                event("@b:b.test", "b.test", &theirs),
                event("@c:b.test", "b.test", &theirs),
            ]),
        ];
        check("a.test", &chunks).expect("consistent");
    }

    #[test]
    fn disagreements_are_refused() {
        let (ours, theirs) = (key(), key());
        let signed = || events_chunk(vec![event("@a:a.test", "a.test", &ours)]);
        let refused = |server_name: &str, chunks: &[TableRows], word: &str| match check(
            server_name,
            chunks,
        ) {
            Err(Error::InvalidParam(m)) => assert!(m.contains(word), "{m:?} lacks {word:?}"),
            other => panic!("{other:?}"),
        };
        // The header renamed: our key signed as a.test.
        refused(
            "renamed.test",
            &[keys_chunk(&ours), rooms_chunk(), signed()],
            "a.test",
        );
        // Another key under our key id: the signature doesn't verify.
        refused(
            "a.test",
            &[keys_chunk(&theirs), rooms_chunk(), signed()],
            "does not verify",
        );
        // No key at all.
        refused("a.test", &[rooms_chunk()], "no signing key");
        let unreadable = chunk(
            "signing_keys",
            &["key_id", "pkcs8"],
            vec![vec![json!(KEY_ID), json!({"$bytes": "AAAA"})]],
        );
        refused("a.test", &[unreadable], "not an ed25519 key");
        // A device key naming another server.
        let device = chunk(
            "device_keys",
            &["localpart", "device_id", "keys_json"],
            vec![vec![
                json!("a"),
                json!("D"),
                json!(r#"{"user_id":"@a:b.test"}"#),
            ]],
        );
        refused("a.test", &[keys_chunk(&ours), device], "@a:b.test");
    }

    #[test]
    fn media_records_name_the_blobs_that_come() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let media = |table: &str, sha: &str, size: u64| {
            chunk(
                table,
                &["media_id", "size", "sha256"],
                vec![vec![json!("m"), json!(size), json!(sha)]],
            )
        };
        let mut consistency = Consistency::new("a.test");
        for c in [
            keys_chunk(&key()),
            media("media", &a, 5),
            media("remote_media", &a, 5),
            media("media_thumbnails", &b, 3),
        ] {
            consistency.chunk(&c).expect("consistent");
        }
        assert_eq!(consistency.blob(&a).expect("named"), 5);
        let refused = |result: Result<u64>, word: &str| match result {
            Err(Error::InvalidParam(m)) => assert!(m.contains(word), "{m:?} lacks {word:?}"),
            other => panic!("{other:?}"),
        };
        refused(consistency.blob(&a), "twice");
        refused(consistency.blob(&c), "none of its media records");
        // Blob b never came: warned about, not refused.
        consistency.finish().expect("finished");

        let mut sizes = Consistency::new("a.test");
        sizes.chunk(&media("media", &a, 5)).expect("first");
        match sizes.chunk(&media("remote_media", &a, 6)) {
            Err(Error::InvalidParam(m)) => assert!(m.contains("6 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_names_of_user_ids() {
        assert_eq!(server_of("@a:example.org"), Some("example.org"));
        assert_eq!(server_of("@a:localhost:8448"), Some("localhost:8448"));
        assert_eq!(server_of("a:example.org"), None);
        assert_eq!(server_of("@nocolon"), None);
    }
}
