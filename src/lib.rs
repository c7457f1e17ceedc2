//! pingpong: how one process serves many clients, at the level of raw system calls.
//!
//! The library holds everything the `pingpong` binary runs, so the tests and
//! the benchmark use the very same pieces:
//!
//! - [`selector`]: a Python-shaped `Selector` over epoll, kqueue, poll and select;
//! - [`protocol`]: the line protocol, pure code shared by every mode;
//! - [`net`]: listen, accept and send, as the course calls them;
//! - [`server`]: one file per mode (blocking, selector loop, threads and pool);
//! - [`client`]: the threaded and selector clients.

pub mod client;
pub mod net;
pub mod protocol;
pub mod selector;
pub mod server;
pub mod trace;
