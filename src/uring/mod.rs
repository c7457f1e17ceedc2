//! io_uring by hand: Linux's completion interface, on raw system calls.
//!
//! A selector answers "which fds are ready?", and the program then makes the
//! `read` and the `send` itself. io_uring turns that around: the program
//! puts *requests* in a ring shared with the kernel ("accept on this
//! socket", "receive into one of these buffers", "send these bytes"), and
//! reaps *completions* from another ring, many per system call
//! (io_uring(7), io_uring_setup(2), io_uring_enter(2)).
//!
//! | file         | what                                                         |
//! |--------------|--------------------------------------------------------------|
//! | `abi.rs`     | the kernel's structs and constants, declared by hand         |
//! | `sys.rs`     | every `unsafe`: the three system calls, mmap, shared memory  |
//! | `ring.rs`    | [`Ring`]: set up, push SQEs, enter, reap CQEs                |
//! | `bufring.rs` | [`BufRing`]: the provided buffers every receive shares       |
//! | `op.rs`      | the requests, built as liburing's `io_uring_prep_*`          |
//! | `trace.rs`   | `--trace`: the calls as strace prints them, SQEs and CQEs    |
//!
//! The server on top is `server/uring/`.

mod abi;
mod bufring;
mod narrate;
pub mod op;
mod ring;
#[allow(unsafe_code)] // the ring's one funnel for raw calls and shared memory
mod sys;

use std::io;

pub use abi::{Cqe, Sqe, IORING_CQE_BUFFER_SHIFT, IORING_CQE_F_BUFFER, IORING_CQE_F_MORE};
pub use bufring::BufRing;
pub use narrate::comment;
pub use ring::{Entered, Options, Ring, Stats, Taskrun};
pub use sys::accepted_fd;

/// Why io_uring_setup(2) failed, in one line a person can act on, with the
/// errno and the contents of `/proc/sys/kernel/io_uring_disabled` (if it
/// could be read). ENOSYS: a kernel without io_uring; EPERM: the sysctl
/// (when nonzero), or else a filter such as a container's seccomp profile.
pub fn unavailable(e: &io::Error, disabled_sysctl: Option<&str>) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "this kernel has no io_uring (ENOSYS: it needs Linux 5.1, this mode 6.1)".to_string()
        }
        Some(libc::EPERM) => match disabled_sysctl.map(str::trim) {
            Some(value) if value != "0" => format!(
                "io_uring is disabled by the sysctl kernel.io_uring_disabled = {value} (EPERM)"
            ),
            _ => "io_uring_setup was refused (EPERM), as a container's seccomp profile does"
                .to_string(),
        },
        _ => format!("io_uring_setup failed: {}", crate::words::cause(e)),
    }
}

#[cfg(test)]
mod tests;
