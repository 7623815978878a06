//! The errors of the homeserver logic. Each variant names a Matrix failure; `maas-http` maps
//! them to errcodes and statuses in one place.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    MissingParam(String),
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    BadJson(String),
    #[error("{0}")]
    InvalidSignature(String),
    /// A federation request whose signature or origin can't be accepted.
    #[error("{0}")]
    Unauthorized(String),
    /// Another server could not be reached or failed to answer as the spec says.
    #[error("{0}")]
    RemoteUnavailable(String),
    #[error("{0}")]
    TooLarge(String),
    /// Another server's media is larger than we fetch or thumbnail (`502 M_TOO_LARGE`).
    #[error("{0}")]
    RemoteTooLarge(String),
    /// Media whose id was created and whose bytes have not come in time.
    #[error("The media has not been uploaded yet")]
    NotYetUploaded,
    /// Bytes sent for a media id that has them already.
    #[error("The media has been uploaded already")]
    CannotOverwriteMedia,
    /// The homeserver's own resource limit (its storage quota) is reached; `admin_contact`
    /// is where its users can ask for more.
    #[error("{message}")]
    ResourceLimitExceeded {
        message: String,
        admin_contact: String,
    },
    /// The request's body did not arrive whole in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("Room version {0} is not supported")]
    UnsupportedRoomVersion(String),
    /// The room's version is not among those the joining server speaks.
    #[error("Your server does not support the room version {0}")]
    IncompatibleRoomVersion(String),
    #[error("Room alias already taken")]
    RoomInUse,
    #[error("A room alias with that name already exists")]
    AliasExists,
    /// A key backup upload to a version that is no longer the current one.
    #[error("Wrong backup version; the current one is {0}")]
    WrongRoomKeysVersion(String),
    /// The spec's catch-all `M_UNKNOWN` for a request that can't be honoured as it stands.
    #[error("{0}")]
    Unknown(String),
    #[error("User ID already taken")]
    UserInUse,
    #[error("Unknown access token")]
    UnknownToken,
    #[error("This account has been deactivated")]
    UserDeactivated,
    /// An admin locked the account: no login, no request with its tokens (`401`, soft logout).
    #[error("User account has been locked")]
    UserLocked,
    /// An admin suspended the account (MSC3823): it may read, not send, join or change its
    /// profile.
    #[error("{0}")]
    UserSuspended(String),
    #[error("Guest access is not allowed on this server")]
    GuestAccessForbidden,
    #[error("Too many requests")]
    LimitExceeded { retry_after_ms: u64 },
    #[error("User-interactive authentication required")]
    UiaRequired(Box<UiaChallenge>),
    #[error("Unknown user-interactive authentication session")]
    UnknownUiaSession,
    #[error("{0}")]
    UnknownLoginType(String),
    #[error("This homeserver is suspended")]
    TenantSuspended,
    /// An operator-level conflict: a server name, host or token that is taken.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}

/// The body of a `401` user-interactive authentication response.
#[derive(Debug, Clone)]
pub struct UiaChallenge {
    pub flows: Vec<Vec<String>>,
    pub completed: Vec<String>,
    pub session: String,
    pub params: serde_json::Value,
    /// Why the last stage failed: (errcode, message).
    pub error: Option<(&'static str, String)>,
}
