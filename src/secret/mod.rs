//! The Secret Discovery Service: turns Secrets into credentials, validates
//! them, and keeps the last good one per resource.
//!
//! It must never log or print key material.
//!
//! Dependencies run one way: `files` (file mounts) and `watch` (inotify)
//! feed `sds`, which knows neither; `expiry` reads `sds` to report
//! certificates that run out while serving.

pub mod credential;
pub mod events;
pub mod expiry;
pub mod files;
pub mod sds;
pub mod upstream;
mod watch;
