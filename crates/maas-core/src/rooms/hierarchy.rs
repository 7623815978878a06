//! Space hierarchies (spec: Client-Server API, "Spaces", `GET /rooms/{roomId}/hierarchy`): a
//! space's rooms, depth first along `m.space.child` and a page at a time, each once and only if
//! the user may see it; rooms this tenant isn't in are asked of the servers their parent names.

mod summary;
mod token;

use std::collections::{HashMap, HashSet};

use ruma::api::federation::space::get_hierarchy;
use ruma::room::{RoomSummary, RoomType};
use ruma::{OwnedRoomId, OwnedServerName, RoomId, UserId};

pub use summary::SpaceRoom;
pub(crate) use summary::{known_room, server_may_see};

use super::Rooms;
use crate::federation::hierarchy::ask;
use crate::{Error, Result, Tenant};
use summary::{Child, events_of, known_rule, told_children, user_may_see};
use token::{Entry, MAX_VIA, Walk};

/// Rooms a page holds when the client doesn't say, and at most.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 100;
/// How deep a walk goes when the client doesn't say, and at most: space trees are rarely more
/// than a few levels deep, and each level may cost requests to other servers.
const MAX_DEPTH: u32 = 10;
/// Rooms looked at for one page at most, shown or not, so that a page of rooms the user may
/// not see still ends.
const MAX_VISITS: usize = 200;
/// Requests to other servers for one page at most; the walk goes on from there on the next.
const MAX_ASKS: usize = 10;

/// What a client asks of `GET /hierarchy`.
#[derive(Clone, Debug, Default)]
pub struct HierarchyQuery {
    pub from: Option<String>,
    pub limit: Option<u64>,
    pub max_depth: Option<u64>,
    pub suggested_only: bool,
}

/// A page of a space tree.
#[derive(Debug)]
pub struct HierarchyPage {
    pub rooms: Vec<SpaceRoom>,
    /// Where the next page starts; `None` after the last one.
    pub next_batch: Option<String>,
}

impl Rooms<'_> {
    /// `GET /rooms/{roomId}/hierarchy`: a page of the tree under `room_id` as `user` may see
    /// it. `403` when they may not see the root (or no server here or named by its id knows
    /// it, as the spec says of a room that doesn't exist); `400` for a token that isn't one of
    /// this walk.
    pub async fn hierarchy(
        &self,
        user: &UserId,
        room_id: &RoomId,
        query: HierarchyQuery,
    ) -> Result<HierarchyPage> {
        self.walk_hierarchy(Some(user), room_id, query).await
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}/hierarchy`: a page of the tree under `room_id`
    /// whatever an admin's memberships, of the rooms this tenant is in only (as Synapse, no
    /// other server is asked); a root this tenant is not in gives an empty page.
    pub async fn admin_hierarchy(
        &self,
        room_id: &RoomId,
        query: HierarchyQuery,
    ) -> Result<HierarchyPage> {
        self.walk_hierarchy(None, room_id, query).await
    }

    /// The walk for `user`, or for an admin (`None`).
    async fn walk_hierarchy(
        &self,
        user: Option<&UserId>,
        room_id: &RoomId,
        query: HierarchyQuery,
    ) -> Result<HierarchyPage> {
        let limit = page_limit(query.limit)?;
        let max_depth = query.max_depth.map_or(MAX_DEPTH, |depth| {
            u32::try_from(depth).map_or(MAX_DEPTH, |depth| depth.min(MAX_DEPTH))
        });
        let resumed = match query.from.as_deref() {
            Some(token) => Some(Walk::resume(
                token,
                room_id,
                query.suggested_only,
                max_depth,
            )?),
            None => None,
        };
        let mut walker = Walker::new(self.tenant, user, query.suggested_only, max_depth);
        // Checked on every page: the user may have lost sight of the space since the first.
        let root = walker.visit(&walker.root_entry(room_id)).await?.shown();
        let Some(root) = root else {
            if user.is_none() {
                return Ok(HierarchyPage {
                    rooms: Vec::new(),
                    next_batch: None,
                });
            }
            return Err(Error::Forbidden(format!(
                "You are not allowed to view the room {room_id}"
            )));
        };
        let (mut walk, mut rooms) = match resumed {
            Some(walk) => (walk, Vec::new()),
            None => {
                let mut walk = Walk::new(room_id, query.suggested_only, max_depth);
                walk.descend(0, &root.children);
                (walk, vec![root.room])
            }
        };
        walker.fill(&mut walk, &mut rooms, limit).await?;
        let next_batch = (!walk.is_done()).then(|| walk.token());
        Ok(HierarchyPage { rooms, next_batch })
    }
}

/// The page size a client asked for, within this server's bounds; the spec wants it positive.
fn page_limit(limit: Option<u64>) -> Result<usize> {
    match limit {
        Some(0) => Err(Error::InvalidParam(
            "limit must be greater than zero".into(),
        )),
        limit => Ok(
            usize::try_from(limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)).unwrap_or(usize::MAX),
        ),
    }
}

/// A room shown, and its children to walk next.
struct Visited {
    room: SpaceRoom,
    children: Vec<Child>,
}

/// What came of visiting a room.
enum Visit {
    Shown(Box<Visited>),
    /// Not shown: the user may not see it, or no server told of it.
    Hidden,
    /// Not visited on this page: it needs another server, and the page asked enough of them.
    Postponed,
}

/// What came of asking other servers about a room.
enum Asked {
    Answered(Box<Visited>),
    /// No server named answered for it.
    Unanswered,
    /// The page asked enough of other servers before one answered.
    OutOfAsks,
}

impl Visit {
    fn shown(self) -> Option<Visited> {
        match self {
            Visit::Shown(visited) => Some(*visited),
            Visit::Hidden | Visit::Postponed => None,
        }
    }
}

/// Visits the rooms of one page for one user.
struct Walker<'t> {
    tenant: &'t Tenant,
    /// `None`: an admin, who sees every room here and asks no other server.
    user: Option<&'t UserId>,
    suggested_only: bool,
    max_depth: u32,
    /// Summaries of rooms other servers answered as children of a space of theirs.
    told: HashMap<OwnedRoomId, RoomSummary>,
    /// Servers that could not be reached during this page: not asked again.
    unreachable: HashSet<OwnedServerName>,
    asks_left: usize,
}

impl<'t> Walker<'t> {
    fn new(
        tenant: &'t Tenant,
        user: Option<&'t UserId>,
        suggested_only: bool,
        max_depth: u32,
    ) -> Self {
        Self {
            tenant,
            user,
            suggested_only,
            max_depth,
            told: HashMap::new(),
            unreachable: HashSet::new(),
            asks_left: MAX_ASKS,
        }
    }

    /// The root, to be reached (when this tenant isn't in it, or is still fetching its
    /// members) through the server its id names and those known to be in it: no parent names
    /// servers for it.
    fn root_entry(&self, room_id: &RoomId) -> Entry {
        let mut via: Vec<OwnedServerName> = room_id
            .server_name()
            .map(ToOwned::to_owned)
            .into_iter()
            .collect();
        via.extend(self.tenant.partial_rooms().servers(room_id));
        via.truncate(MAX_VIA);
        Entry {
            room_id: room_id.to_owned(),
            via,
            depth: 0,
        }
    }

    /// Visits rooms until the page is full, the walk is over, or the page did its share.
    async fn fill(
        &mut self,
        walk: &mut Walk,
        rooms: &mut Vec<SpaceRoom>,
        limit: usize,
    ) -> Result<()> {
        let mut visits = 0;
        while rooms.len() < limit && visits < MAX_VISITS {
            let Some(entry) = walk.next() else {
                break;
            };
            visits += 1;
            match self.visit(&entry).await? {
                Visit::Shown(visited) => {
                    walk.descend(entry.depth, &visited.children);
                    rooms.push(visited.room);
                }
                Visit::Hidden => {}
                Visit::Postponed => {
                    walk.put_back(entry);
                    break;
                }
            }
        }
        Ok(())
    }

    /// A room as this tenant knows it, or else as its servers tell.
    async fn visit(&mut self, entry: &Entry) -> Result<Visit> {
        let Some(room) = known_room(self.tenant, &entry.room_id, self.suggested_only).await? else {
            if self.user.is_none() {
                return Ok(Visit::Hidden);
            }
            return self.visit_remote(entry).await;
        };
        if let Some(user) = self.user
            && !user_may_see(self.tenant, user, &room.summary).await?
        {
            return Ok(Visit::Hidden);
        }
        let visited = Visited {
            room: room.space_room(),
            children: room.children,
        };
        Ok(Visit::Shown(Box::new(visited)))
    }

    async fn visit_remote(&mut self, entry: &Entry) -> Result<Visit> {
        let visited = match self.told_enough(entry) {
            Some(summary) => Visited {
                room: SpaceRoom {
                    summary,
                    children_state: Vec::new(),
                },
                children: Vec::new(),
            },
            None => match self.ask_via(entry).await {
                Asked::Answered(visited) => *visited,
                Asked::Unanswered => return Ok(Visit::Hidden),
                Asked::OutOfAsks => return Ok(Visit::Postponed),
            },
        };
        if let Some(user) = self.user
            && !user_may_see(self.tenant, user, &visited.room.summary).await?
        {
            return Ok(Visit::Hidden);
        }
        Ok(Visit::Shown(Box::new(visited)))
    }

    /// What a parent's server told of the room, when that is enough: the room's children
    /// won't be walked (it is no space, or as deep as the walk goes), so it needn't be asked.
    fn told_enough(&self, entry: &Entry) -> Option<RoomSummary> {
        let summary = self.told.get(&entry.room_id)?;
        let walks_on = summary.room_type == Some(RoomType::Space) && entry.depth < self.max_depth;
        (!walks_on).then(|| summary.clone())
    }

    /// Asks the servers the room's parent named, in turn, for the room and its children.
    async fn ask_via(&mut self, entry: &Entry) -> Asked {
        let own = self.tenant.server_name();
        let servers = entry
            .via
            .iter()
            .take(MAX_VIA)
            .filter(|server| *server != own && !self.unreachable.contains(*server));
        for server in servers.cloned().collect::<Vec<_>>() {
            if self.asks_left == 0 {
                return Asked::OutOfAsks;
            }
            self.asks_left -= 1;
            match ask(self.tenant, &server, &entry.room_id, self.suggested_only).await {
                Ok(answer) => return Asked::Answered(Box::new(self.heard(answer))),
                // The server doesn't know the room or won't show it to us: another may.
                Err(Error::NotFound(e) | Error::Forbidden(e)) => {
                    let room_id = &entry.room_id;
                    tracing::debug!(
                        %server, %room_id, error = %e, "a server won't show a space's room"
                    );
                }
                Err(e) => {
                    let room_id = &entry.room_id;
                    tracing::debug!(
                        %server, %room_id, error = %e, "no answer about a space's room"
                    );
                    self.unreachable.insert(server);
                }
            }
        }
        Asked::Unanswered
    }

    /// Takes in another server's answer for a room: the room, and the summaries of those of
    /// its children the answer covers, for when the walk gets to them.
    fn heard(&mut self, answer: get_hierarchy::v1::Response) -> Visited {
        let mut summary = answer.room.summary;
        summary.join_rule = known_rule(summary.join_rule);
        let children = match summary.room_type {
            Some(RoomType::Space) => {
                told_children(&answer.room.children_state, self.suggested_only)
            }
            // The spec has no children for other rooms.
            _ => Vec::new(),
        };
        for mut told in answer.children {
            if children.iter().any(|c| c.room_id == told.room_id) {
                told.join_rule = known_rule(told.join_rule);
                self.told.insert(told.room_id.clone(), told);
            }
        }
        let children_state = events_of(&children);
        // Children the server says no one of ours could see are not worth a visit.
        let inaccessible: HashSet<OwnedRoomId> = answer.inaccessible_children.into_iter().collect();
        let children = children
            .into_iter()
            .filter(|c| !inaccessible.contains(&c.room_id))
            .collect();
        Visited {
            room: SpaceRoom {
                summary,
                children_state,
            },
            children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_positive_bounded_size() {
        assert!(matches!(page_limit(Some(0)), Err(Error::InvalidParam(_))));
        assert_eq!(page_limit(None).ok(), Some(50));
        assert_eq!(page_limit(Some(3)).ok(), Some(3));
        assert_eq!(page_limit(Some(u64::MAX)).ok(), Some(100));
    }
}
