//! `--trace`: the server narrates its own system calls, in strace's syntax.
//!
//! Each line is what `strace` would print for the call, then the reason:
//!
//! ```text
//! epoll_ctl(4, EPOLL_CTL_ADD, 8, {events=EPOLLIN, data={u32=8, u64=8}}) = 0   # register fd 8 for READ
//! epoll_wait(4, [{events=EPOLLIN, data={u32=8, u64=8}}], 64, -1) = 1   # 1 fd ready
//! ```
//!
//! On macOS, where there is no strace, this is how a student sees the calls.
//! Every narration site is guarded by a plain `bool`, so with `--trace` off
//! the cost is one predictable branch and nothing is formatted.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::net::SocketAddr;

/// Print one narration line on stderr: `CALL = RESULT   # WHY`, padded like
/// strace so the results line up.
pub fn line(call: fmt::Arguments, result: &str, why: fmt::Arguments) {
    // Formatted first, then one write(2): stderr is unbuffered, and writing
    // piece by piece would cost a system call per padding space.
    let line = format!("{:<39} = {result}   # {why}\n", call.to_string());
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// A call's result as strace shows it: the value, or `-1 EAGAIN (...)`.
pub fn result(r: Result<i64, &io::Error>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => match e.raw_os_error() {
            Some(code) => {
                // strerror's text, as strace shows it, without Rust's suffix.
                let text = io::Error::from_raw_os_error(code).to_string();
                let text = text.split(" (os error").next().unwrap_or_default();
                format!("-1 {:?} ({text})", nix::errno::Errno::from_raw(code))
            }
            None => format!("-1 ({e})"),
        },
    }
}

/// `fcntl(fd, F_GETFD)`'s result as strace shows it: `0x1 (flags
/// FD_CLOEXEC)` for the close-on-exec flag every fd of this program has, `0`
/// for none, or the error.
pub fn fd_flags_result(r: Result<&libc::c_int, &io::Error>) -> String {
    match r {
        Ok(&flags) if flags & libc::FD_CLOEXEC != 0 => format!("{flags:#x} (flags FD_CLOEXEC)"),
        Ok(&flags) => flags.to_string(),
        Err(e) => result(Err(e)),
    }
}

/// Why a selector's wait returned, from its result.
pub fn wait_reason(r: Result<i64, &io::Error>) -> String {
    match r {
        Ok(0) => "timed out: a deadline is due".to_string(),
        Ok(1) => "1 fd ready".to_string(),
        Ok(n) => format!("{n} fds ready"),
        Err(_) => "interrupted by a signal: an empty batch".to_string(),
    }
}

/// Flag bits as strace prints them, `EPOLLIN|EPOLLOUT`, or `0` when none of
/// the named bits is set. The backends pass their own table of names.
pub fn flags(bits: u64, names: &[(u64, &str)]) -> String {
    let set: Vec<&str> =
        names.iter().filter(|&&(bit, _)| bits & bit != 0).map(|&(_, name)| name).collect();
    if set.is_empty() {
        "0".to_string()
    } else {
        set.join("|")
    }
}

/// A buffer as strace prints it: a C string literal, cut after 32 bytes.
pub fn bytes(buf: &[u8]) -> String {
    const SHOWN: usize = 32;
    let mut s = String::from("\"");
    for &b in buf.iter().take(SHOWN) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:o}");
            }
        }
    }
    s.push('"');
    if buf.len() > SHOWN {
        s.push_str("...");
    }
    s
}

/// A socket address as strace prints a `struct sockaddr`.
pub fn sockaddr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{{sa_family=AF_INET, sin_port=htons({}), sin_addr=inet_addr(\"{}\")}}",
            a.port(),
            a.ip()
        ),
        SocketAddr::V6(a) => format!(
            "{{sa_family=AF_INET6, sin6_port=htons({}), sin6_addr=inet_pton(AF_INET6, \"{}\")}}",
            a.port(),
            a.ip()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_like_strace() {
        assert_eq!(result(Ok(5)), "5");
        let eagain = io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(result(Err(&eagain)), "-1 EAGAIN (Resource temporarily unavailable)");
    }

    #[test]
    fn flags_read_like_strace() {
        let names = [(1, "IN"), (4, "OUT")];
        assert_eq!(flags(5, &names), "IN|OUT");
        assert_eq!(flags(2, &names), "0");
    }

    #[test]
    fn buffers_are_quoted_and_cut_like_strace() {
        assert_eq!(bytes(b"ping\n"), "\"ping\\n\"");
        assert_eq!(bytes(&[b'x'; 40]), format!("\"{}\"...", "x".repeat(32)));
        assert_eq!(bytes(&[0x0f]), "\"\\17\"");
    }
}
