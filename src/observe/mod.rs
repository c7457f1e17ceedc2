//! Looking at a server from outside, the way a person at a terminal would:
//! start it, read what it prints, sample it in `/proc`, poke it with a
//! client, stop it.
//!
//! This is the one layer every tool that watches a server builds on: the
//! labs (`lab/`), the integration tests, the benchmark (`bench/`), the
//! grader (`pingpong check`) and the live view (`pingpong watch`). It knows
//! nothing of how pingpong's servers work inside; it works as well on a
//! student's Python server as on `pingpong serve`.
//!
//! - [`banner`]: pingpong's start-up line, `listening on ADDR (mode M, pid P)`;
//! - [`launched`]: a server started as a child process, its output kept,
//!   stopped with SIGTERM and then SIGKILL;
//! - [`sample`]: one look at a process in `/proc` (CPU, memory, threads, fds,
//!   context switches), and what it used between two looks;
//! - [`wire`]: what a client does to provoke a server: a small receive
//!   buffer, writes that never stop, a reset instead of a FIN.
//!
//! `/proc` is Linux's: elsewhere [`sample`] answers with
//! [`std::io::ErrorKind::Unsupported`], and the rest works as it is.

pub mod banner;
pub mod launched;
pub mod sample;
pub mod tcp_table;
pub mod wire;

pub use banner::Banner;
pub use launched::{Launched, Stream};
pub use sample::Sample;
