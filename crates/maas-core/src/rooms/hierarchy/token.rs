//! Where a walk of a space tree stands between pages, carried whole in the `from`/`next_batch`
//! token (rooms still to visit, digests of those visited, the walk's parameters): paging needs
//! no memory on the server, and a token never goes stale.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ruma::{OwnedRoomId, OwnedServerName, RoomId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::summary::Child;
use crate::{Error, Result};

/// Bytes of a room id's SHA-256 kept to remember it was visited: 64 bits make a collision
/// between the rooms of one tree unlikely beyond concern, at 8 bytes a room in the token.
const DIGEST_BYTES: usize = 8;
/// Servers of a child's `via` remembered to reach it: the first few are the ones asked.
pub(super) const MAX_VIA: usize = 3;
/// The longest token accepted; anything longer is none this server made.
const MAX_TOKEN_LEN: usize = 256 * 1024;

type RoomDigest = [u8; DIGEST_BYTES];

/// A room to visit, as deep as it lies under the root, with the servers its parent named.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Entry {
    #[serde(rename = "r")]
    pub(super) room_id: OwnedRoomId,
    #[serde(rename = "v")]
    pub(super) via: Vec<OwnedServerName>,
    #[serde(rename = "d")]
    pub(super) depth: u32,
}

/// A depth-first walk: a stack of rooms to visit, the next on top. A client that edits its
/// token gains nothing: every room is checked for the requesting user before it is shown.
#[derive(Debug)]
pub(super) struct Walk {
    root: OwnedRoomId,
    suggested_only: bool,
    max_depth: u32,
    stack: Vec<Entry>,
    visited: HashSet<RoomDigest>,
}

/// The token's content, before base64.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "r")]
    root: OwnedRoomId,
    #[serde(rename = "s")]
    suggested_only: bool,
    #[serde(rename = "d")]
    max_depth: u32,
    #[serde(rename = "q")]
    stack: Vec<Entry>,
    /// The digests of the visited rooms, one after the other, in base64.
    #[serde(rename = "v")]
    visited: String,
}

impl Walk {
    /// A walk below `root`, which was just visited.
    pub(super) fn new(root: &RoomId, suggested_only: bool, max_depth: u32) -> Self {
        let mut walk = Self {
            root: root.to_owned(),
            suggested_only,
            max_depth,
            stack: Vec::new(),
            visited: HashSet::new(),
        };
        walk.visited.insert(digest(root));
        walk
    }

    /// The walk a token carries on, when it was made for this root and these parameters
    /// (the spec lets neither `suggested_only` nor `max_depth` change between pages).
    pub(super) fn resume(
        token: &str,
        root: &RoomId,
        suggested_only: bool,
        max_depth: u32,
    ) -> Result<Self> {
        let wire = decode(token).ok_or_else(|| invalid("Unknown pagination token"))?;
        if wire.root != root {
            return Err(invalid("The pagination token is for another room"));
        }
        if wire.suggested_only != suggested_only || wire.max_depth != max_depth {
            return Err(invalid(
                "suggested_only and max_depth cannot change on paginated requests",
            ));
        }
        let visited = URL_SAFE_NO_PAD
            .decode(&wire.visited)
            .ok()
            .filter(|bytes| bytes.len() % DIGEST_BYTES == 0)
            .ok_or_else(|| invalid("Unknown pagination token"))?;
        if wire.stack.iter().any(|e| e.depth > max_depth) {
            return Err(invalid("Unknown pagination token"));
        }
        Ok(Self {
            root: wire.root,
            suggested_only,
            max_depth,
            stack: wire.stack,
            visited: visited
                .chunks_exact(DIGEST_BYTES)
                .filter_map(|chunk| chunk.try_into().ok())
                .collect(),
        })
    }

    /// The next room not visited yet, now counted as visited.
    pub(super) fn next(&mut self) -> Option<Entry> {
        while let Some(entry) = self.stack.pop() {
            if self.visited.insert(digest(&entry.room_id)) {
                return Some(entry);
            }
        }
        None
    }

    /// Returns a room taken with [`Walk::next`] that could not be visited on this page.
    pub(super) fn put_back(&mut self, entry: Entry) {
        self.visited.remove(&digest(&entry.room_id));
        self.stack.push(entry);
    }

    /// Queues the children of a room visited at `depth`, the first to be visited next, unless
    /// that room is as deep as the walk goes.
    pub(super) fn descend(&mut self, depth: u32, children: &[Child]) {
        if depth >= self.max_depth {
            return;
        }
        for child in children.iter().rev() {
            if self.visited.contains(&digest(&child.room_id)) {
                continue;
            }
            self.stack.push(Entry {
                room_id: child.room_id.clone(),
                via: child.via.iter().take(MAX_VIA).cloned().collect(),
                depth: depth + 1,
            });
        }
    }

    /// Whether no room is left to visit (rooms visited already are dropped from the top, so a
    /// last page is not an empty one).
    pub(super) fn is_done(&mut self) -> bool {
        while let Some(entry) = self.stack.last() {
            if !self.visited.contains(&digest(&entry.room_id)) {
                return false;
            }
            self.stack.pop();
        }
        true
    }

    /// The token to carry on from here.
    pub(super) fn token(&self) -> String {
        let mut digests: Vec<RoomDigest> = self.visited.iter().copied().collect();
        // Sorted, so that one walk always makes the same token.
        digests.sort_unstable();
        let wire = Wire {
            root: self.root.clone(),
            suggested_only: self.suggested_only,
            max_depth: self.max_depth,
            stack: self.stack.clone(),
            visited: URL_SAFE_NO_PAD.encode(digests.concat()),
        };
        // A struct of strings, numbers and lists always serialises.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }
}

fn decode(token: &str) -> Option<Wire> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(token).ok()?;
    serde_json::from_slice(&json).ok()
}

fn digest(room_id: &RoomId) -> RoomDigest {
    let hash = Sha256::digest(room_id.as_bytes());
    let mut digest = [0; DIGEST_BYTES];
    digest.copy_from_slice(&hash[..DIGEST_BYTES]);
    digest
}

fn invalid(message: &str) -> Error {
    Error::InvalidParam(message.to_owned())
}

#[cfg(test)]
mod tests {
    use ruma::serde::Raw;

    use super::*;

    fn room(id: &str) -> OwnedRoomId {
        RoomId::parse(id).expect("room id")
    }

    fn children(ids: &[&str]) -> Vec<Child> {
        let event = serde_json::value::to_raw_value(&serde_json::json!({})).expect("raw");
        ids.iter()
            .map(|id| Child {
                room_id: room(id),
                via: vec![
                    "a.test".try_into().expect("server"),
                    "b.test".try_into().expect("server"),
                ],
                event: Raw::from_json(event.clone()),
            })
            .collect()
    }

    #[test]
    fn a_walk_goes_on_from_its_token_where_it_stopped() {
        let root = room("!root:a.test");
        let mut walk = Walk::new(&root, false, 3);
        walk.descend(
            0,
            &children(&["!one:a.test", "!two:a.test", "!root:a.test"]),
        );
        let first = walk.next().expect("a room");
        assert_eq!(first.room_id, room("!one:a.test"));
        assert_eq!(first.depth, 1);
        let token = walk.token();

        let mut resumed = Walk::resume(&token, &root, false, 3).expect("token");
        let second = resumed.next().expect("a room");
        assert_eq!(second.room_id, room("!two:a.test"));
        assert_eq!(second.via.len(), 2);
        // The root and the first child count as visited: nothing is left.
        assert!(resumed.next().is_none());
        assert!(resumed.is_done());
    }

    #[test]
    fn a_token_is_refused_for_other_parameters_or_when_it_is_none_of_ours() {
        let root = room("!root:a.test");
        let mut walk = Walk::new(&root, true, 2);
        walk.descend(0, &children(&["!one:a.test"]));
        let token = walk.token();
        assert!(Walk::resume(&token, &root, true, 2).is_ok());
        for (other_root, suggested_only, max_depth) in [
            (room("!other:a.test"), true, 2),
            (root.clone(), false, 2),
            (root.clone(), true, 3),
        ] {
            let refused = Walk::resume(&token, &other_root, suggested_only, max_depth);
            assert!(
                matches!(refused, Err(Error::InvalidParam(_))),
                "{refused:?}"
            );
        }
        for junk in [
            "",
            "not base64!",
            "bm90IGpzb24",
            &"A".repeat(MAX_TOKEN_LEN + 4),
        ] {
            let refused = Walk::resume(junk, &root, true, 2);
            assert!(matches!(refused, Err(Error::InvalidParam(_))), "{junk:.20}");
        }
    }

    #[test]
    fn children_below_the_deepest_level_are_not_queued() {
        let root = room("!root:a.test");
        let mut walk = Walk::new(&root, false, 1);
        walk.descend(1, &children(&["!deep:a.test"]));
        assert!(walk.is_done());
        walk.descend(0, &children(&["!near:a.test"]));
        assert!(!walk.is_done());
    }

    #[test]
    fn a_room_put_back_is_visited_later() {
        let root = room("!root:a.test");
        let mut walk = Walk::new(&root, false, 1);
        walk.descend(0, &children(&["!one:a.test"]));
        let entry = walk.next().expect("a room");
        walk.put_back(entry.clone());
        assert_eq!(walk.next(), Some(entry));
    }
}
