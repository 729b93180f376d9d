//! A queue's files: the listing and ranged reads ([`files`]), and the
//! Server-Sent Events that follow them live ([`follow`]).

pub mod files;
pub mod follow;
