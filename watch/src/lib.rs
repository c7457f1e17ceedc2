//! `pingpong watch`: a running server as the kernel holds it.
//!
//! The pieces, from the kernel up:
//!
//! - [`raw`]: one reading of a process, as the kernel said it, and the
//!   [`raw::Source`] trait that gives readings (from `/proc`, or recorded);
//! - `proc_read` and `sock_diag` (Linux): the live source, `/proc/PID/...`
//!   and one NETLINK_SOCK_DIAG request;
//! - [`fdinfo`]: the epoll, io_uring and eventfd lines of
//!   `/proc/PID/fdinfo/N`, parsed;
//! - [`model`]: two readings joined into a [`model::Snapshot`] (the
//!   `--json` output), and [`problems`]: the rules for what looks wrong;
//! - [`text`] (`--once`) and [`ui`] (the live view): the same tables, in
//!   print or on a terminal.
#![deny(unsafe_code)]

pub mod fdinfo;
pub mod model;
pub mod problems;
#[cfg(target_os = "linux")]
pub mod proc_read;
pub mod raw;
#[cfg(target_os = "linux")]
pub mod sock_diag;
pub mod text;
pub mod ui;
