//! The rules for new user ids: the spec's user id grammar, plus the reservations Synapse makes
//! (a leading `_` belongs to application services, all-digit names to guests).

use ruma::{OwnedUserId, ServerName, UserId};

use crate::{Error, Result};

/// The spec's limit on a whole user id, in bytes.
const MAX_USER_ID_LEN: usize = 255;

/// Normalises a requested username (lower-case, as Synapse does) and checks it.
pub fn validate(username: &str, server_name: &ServerName) -> Result<String> {
    let localpart = username.to_lowercase();
    if localpart.is_empty() {
        return Err(Error::InvalidUsername("Username must not be empty".into()));
    }
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+');
    if !localpart.chars().all(allowed) {
        return Err(Error::InvalidUsername(
            "User ID can only contain characters a-z, 0-9, or '=_-./+'".into(),
        ));
    }
    if localpart.starts_with('_') {
        return Err(Error::InvalidUsername(
            "User ID may not begin with '_'".into(),
        ));
    }
    if localpart.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidUsername(
            "Numeric user IDs are reserved for guest users".into(),
        ));
    }
    if localpart.len() + server_name.as_str().len() + 2 > MAX_USER_ID_LEN {
        return Err(Error::InvalidUsername(format!(
            "User ID may not be longer than {MAX_USER_ID_LEN} characters"
        )));
    }
    Ok(localpart)
}

/// The full user id of a local user.
pub fn user_id(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId> {
    UserId::parse_with_server_name(localpart, server_name)
        .map_err(|e| Error::Internal(format!("stored localpart {localpart:?} is invalid: {e}")))
}

/// The localpart of `user`, given as a localpart or a full user id; `None` when it names a user
/// of another server.
pub fn local_part_of(user: &str, server_name: &ServerName) -> Option<String> {
    if !user.starts_with('@') {
        return Some(user.to_lowercase());
    }
    let parsed = UserId::parse(user).ok()?;
    (parsed.server_name() == server_name).then(|| parsed.localpart().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").expect("valid server name")
    }

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(validate("Alice.B-1", server()).expect("valid"), "alice.b-1");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "bad name",
            "@x:y",
            "_bridge",
            "12345",
            "é",
            &"a".repeat(250),
        ] {
            assert!(
                matches!(validate(bad, server()), Err(Error::InvalidUsername(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn local_part_of_other_server_is_none() {
        assert_eq!(
            local_part_of("@bob:example.org", server()).as_deref(),
            Some("bob")
        );
        assert_eq!(local_part_of("Bob", server()).as_deref(), Some("bob"));
        assert_eq!(local_part_of("@bob:other.org", server()), None);
        assert_eq!(local_part_of("@", server()), None);
    }
}
