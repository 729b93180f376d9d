//! A queue's files: where they come from ([`source`]: the folder, or the
//! database on PostgreSQL), the folder's listing and ranged reads
//! ([`files`]), the Server-Sent Events that follow them live ([`follow`]),
//! the `LISTEN` that wakes the followers on PostgreSQL ([`hub`]), and the
//! newest stored bytes a follower shares with its streams ([`tail`]).

pub mod files;
pub mod follow;
pub mod hub;
pub mod source;
pub mod tail;
