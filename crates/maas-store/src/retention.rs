//! What both backends' pruning shares (`RetentionStore`).

use std::future::Future;

use crate::Result;

/// Runs `batch` from `first` on until it says it is done (no next key); each batch is a
/// transaction of its own. Returns the rows it removed in all.
pub(crate) async fn in_batches<K, F, Fut>(first: K, mut batch: F) -> Result<u64>
where
    F: FnMut(K) -> Fut,
    Fut: Future<Output = Result<(u64, Option<K>)>>,
{
    let mut after = first;
    let mut removed = 0;
    loop {
        let (gone, next) = batch(after).await?;
        removed += gone;
        match next {
            Some(next) => after = next,
            None => return Ok(removed),
        }
    }
}

/// How far a room's room-wide notifications may go: no joined local member but the sender
/// counts a notification at or before the point their read receipt or join puts them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CountedFrom {
    /// Notifications of every sender go up to here (the earliest member's point).
    pub(crate) first: i64,
    /// The member counting from `first`; their own notifications go up to `others`, since
    /// nobody counts what they sent themselves.
    pub(crate) first_user: String,
    /// The next member's point (and `up_to` at most).
    pub(crate) others: i64,
}

impl CountedFrom {
    /// From the (at most) two joined local members counting from the earliest points, in
    /// order; nothing goes past `up_to`. A room without joined local members is nobody's
    /// count: everything up to `up_to` may go.
    pub(crate) fn of(earliest: &[(String, i64)], up_to: i64) -> Self {
        match earliest {
            [] => Self {
                first: up_to,
                first_user: String::new(),
                others: up_to,
            },
            [(user, first)] => Self {
                first: (*first).min(up_to),
                first_user: user.clone(),
                others: up_to,
            },
            [(user, first), (_, second), ..] => Self {
                first: (*first).min(up_to),
                first_user: user.clone(),
                others: (*second).min(up_to),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_come_from_the_two_earliest_members() {
        let of = |members: &[(&str, i64)], up_to| {
            let members: Vec<(String, i64)> =
                members.iter().map(|(u, p)| ((*u).to_owned(), *p)).collect();
            let c = CountedFrom::of(&members, up_to);
            (c.first, c.first_user, c.others)
        };
        assert_eq!(of(&[], 50), (50, String::new(), 50));
        assert_eq!(of(&[("@a:x", 10)], 50), (10, "@a:x".into(), 50));
        assert_eq!(
            of(&[("@a:x", 10), ("@b:x", 20)], 50),
            (10, "@a:x".into(), 20)
        );
        assert_eq!(
            of(&[("@a:x", 10), ("@b:x", 20)], 15),
            (10, "@a:x".into(), 15)
        );
        assert_eq!(
            of(&[("@a:x", 60), ("@b:x", 70)], 50),
            (50, "@a:x".into(), 50)
        );
    }
}
