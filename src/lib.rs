//! pingpong: how one process serves many clients, at the level of raw system calls.
//!
//! The library holds everything the `pingpong` binary runs, so the tests and
//! the benchmark can use the same pieces:
//!
//! - [`selector`]: a Python-shaped `Selector` over epoll, kqueue, poll and select.

pub mod selector;
