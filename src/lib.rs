//! pingpong: how one process serves many clients, at the level of raw system calls.
//!
//! The library holds everything the `pingpong` binary runs, so the tests and
//! the benchmark use the very same pieces:
//!
//! - [`selector`]: a Python-shaped `Selector` over epoll, kqueue, poll and select;
//! - [`protocol`]: the line protocol, pure code shared by every mode;
//! - [`net`]: listen, accept and send, as the course calls them;
//! - [`server`]: one file per mode (blocking, the selector loop, threads and pool,
//!   hybrid), and the event loop's guards, one file each;
//! - [`trace`]: `--trace`, the calls narrated in strace's syntax;
//! - [`client`]: the threaded and selector clients;
//! - [`lab`]: the break-it labs, each guard switched off and the damage measured;
//! - [`observe`]: a server seen from outside: started, sampled in `/proc`, poked, stopped;
//! - [`words`]: what a person reads: plurals, and errors in words;
//! - [`uring`] (Linux): io_uring by hand, the ring the `uring` mode serves on.
//!
//! `unsafe` is refused everywhere but in four small funnels, each block with
//! a `// SAFETY:` line saying why it holds: the selector's system calls
//! (`selector/sys.rs`), io_uring's calls and shared memory (`uring/sys.rs`),
//! `accept4` (`net.rs`) and the signal handler (`server/signals.rs`).

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bugs;
pub mod client;
pub mod lab;
pub mod net;
pub mod observe;
pub mod protocol;
pub mod selector;
pub mod server;
pub mod trace;
#[cfg(target_os = "linux")]
pub mod uring;
pub mod words;
