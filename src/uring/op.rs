//! The requests pingpong puts in the ring, each built as liburing's
//! `io_uring_prep_*` would, and said in words for `--trace`.
//!
//! An [`Sqe`] is 64 bytes of plain data; building one makes no system call
//! and touches no memory but its own. Its `user_data` is the caller's: the
//! kernel hands it back in the completion, and that is how a completion is
//! matched with what it completes.

use std::os::fd::RawFd;

use super::abi::*;

/// `IORING_OP_NOP`: completes at once with 0. The ring's tests use it.
pub fn nop(user_data: u64) -> Sqe {
    Sqe { opcode: IORING_OP_NOP, fd: -1, user_data, ..Sqe::default() }
}

/// Multishot accept (io_uring_prep_multishot_accept(3)): one request that
/// posts a completion per accepted connection, its `res` the new fd
/// (close-on-exec), until an error ends it (a completion without
/// `IORING_CQE_F_MORE`). No address is asked for: one request serves every
/// connection, so there is nowhere to put each one's.
pub fn accept_multishot(listener: RawFd, user_data: u64) -> Sqe {
    Sqe {
        opcode: IORING_OP_ACCEPT,
        fd: listener,
        ioprio: IORING_ACCEPT_MULTISHOT,
        op_flags: libc::SOCK_CLOEXEC as u32,
        user_data,
        ..Sqe::default()
    }
}

/// Multishot receive into the provided buffer group `group`
/// (io_uring_prep_recv_multishot(3)): one request that posts a completion
/// each time bytes arrive, the kernel picking a buffer from the group only
/// then, so a connection that says nothing holds no buffer. It ends at EOF
/// (`res` 0), on an error, when the group runs dry (`-ENOBUFS`), or when
/// cancelled: a completion without `F_MORE`.
pub fn recv_multishot(fd: RawFd, group: u16, user_data: u64) -> Sqe {
    Sqe {
        opcode: IORING_OP_RECV,
        flags: IOSQE_BUFFER_SELECT,
        ioprio: IORING_RECV_MULTISHOT,
        fd,
        buf_group: group,
        user_data,
        ..Sqe::default()
    }
}

/// `send(fd, buf, len, MSG_NOSIGNAL)` as a request (io_uring_prep_send(3)).
/// The kernel reads `buf` whenever it gets to it, up to the completion: the
/// caller must leave those bytes alone until then (see `sys.rs` for why a
/// mistake there cannot corrupt memory, only the bytes sent).
pub fn send(fd: RawFd, buf: &[u8], user_data: u64) -> Sqe {
    Sqe {
        opcode: IORING_OP_SEND,
        fd,
        addr: buf.as_ptr() as u64,
        len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        op_flags: libc::MSG_NOSIGNAL as u32,
        user_data,
        ..Sqe::default()
    }
}

/// Cancel the request whose `user_data` is `target`
/// (io_uring_prep_cancel64(3)). The target completes with `-ECANCELED`
/// (if it had not completed already); the cancel itself completes with 0,
/// or `-ENOENT` when there was nothing left to cancel.
pub fn cancel(target: u64, user_data: u64) -> Sqe {
    Sqe { opcode: IORING_OP_ASYNC_CANCEL, fd: -1, addr: target, user_data, ..Sqe::default() }
}

/// Multishot poll for `POLLIN` (io_uring_prep_poll_multishot(3)): a
/// completion each time `fd` becomes readable. The signal pipe uses it.
pub fn poll_multishot(fd: RawFd, user_data: u64) -> Sqe {
    Sqe {
        opcode: IORING_OP_POLL_ADD,
        fd,
        len: IORING_POLL_ADD_MULTI,
        op_flags: libc::POLLIN as u32,
        user_data,
        ..Sqe::default()
    }
}

/// A request in words, for the comment lines `--trace` prints under each
/// `io_uring_enter`: `recv fd=7 multishot buf_group=0`.
pub fn describe(sqe: &Sqe) -> String {
    let fd = sqe.fd;
    match sqe.opcode {
        IORING_OP_NOP => "nop".to_string(),
        IORING_OP_ACCEPT if sqe.ioprio & IORING_ACCEPT_MULTISHOT != 0 => {
            format!("accept fd={fd} multishot")
        }
        IORING_OP_ACCEPT => format!("accept fd={fd}"),
        IORING_OP_RECV => {
            let multi = if sqe.ioprio & IORING_RECV_MULTISHOT != 0 { " multishot" } else { "" };
            format!("recv fd={fd}{multi} buf_group={}", sqe.buf_group)
        }
        IORING_OP_SEND => format!("send fd={fd} len={}", sqe.len),
        IORING_OP_ASYNC_CANCEL => format!("cancel user_data={:#x}", sqe.addr),
        IORING_OP_POLL_ADD => format!("poll_add fd={fd} POLLIN multishot"),
        op => format!("opcode {op} fd={fd}"),
    }
}

/// A completion's flags in words: `F_BUFFER(bid=3)|F_MORE`, or `0`.
pub fn cqe_flags(flags: u32) -> String {
    let mut said = Vec::new();
    if flags & IORING_CQE_F_BUFFER != 0 {
        said.push(format!("F_BUFFER(bid={})", flags >> IORING_CQE_BUFFER_SHIFT));
    }
    if flags & IORING_CQE_F_MORE != 0 {
        said.push("F_MORE".to_string());
    }
    if said.is_empty() {
        "0".to_string()
    } else {
        said.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_said_in_words() {
        assert_eq!(describe(&recv_multishot(7, 0, 1)), "recv fd=7 multishot buf_group=0");
        assert_eq!(describe(&send(8, b"pong\n", 1)), "send fd=8 len=5");
        assert_eq!(
            cqe_flags(3 << 16 | IORING_CQE_F_BUFFER | IORING_CQE_F_MORE),
            "F_BUFFER(bid=3)|F_MORE"
        );
        assert_eq!(cqe_flags(0), "0");
    }
}
