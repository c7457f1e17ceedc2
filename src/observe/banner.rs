//! The start-up line every `pingpong serve` prints first, and flushes:
//!
//! ```text
//! listening on 127.0.0.1:8000 (mode epoll, pid 1234)
//! listening on 127.0.0.1:8000 (mode pool, 6 workers, pid 1234)
//! ```
//!
//! It says where to connect (the real port, with `--port 0`) and which
//! process to watch (with `--trace` or under strace, the server's own pid,
//! not the tracer's).

use std::fmt;
use std::net::SocketAddr;

/// A parsed start-up line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Banner {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// `epoll`, `threads`, `uring`, ...
    pub mode: String,
    /// What stands between the mode and the pid, if anything: `6 workers`,
    /// `2 event loops`.
    pub detail: Option<String>,
    /// The server's process id.
    pub pid: i32,
}

impl Banner {
    /// `listening on ADDR (mode M[, DETAIL], pid P)` → a `Banner`; `None`
    /// for any other line.
    ///
    /// ```
    /// use pingpong::observe::Banner;
    /// let b = Banner::parse("listening on 127.0.0.1:8000 (mode pool, 6 workers, pid 42)\n").unwrap();
    /// assert_eq!((b.addr.port(), b.mode.as_str(), b.pid), (8000, "pool", 42));
    /// assert_eq!(b.detail.as_deref(), Some("6 workers"));
    /// assert!(Banner::parse("served 3 connections").is_none());
    /// ```
    pub fn parse(line: &str) -> Option<Banner> {
        let rest = line.trim_end().strip_prefix("listening on ")?;
        let (addr, rest) = rest.split_once(" (mode ")?;
        let mut parts: Vec<&str> = rest.strip_suffix(')')?.split(", ").collect();
        let pid = parts.pop()?.strip_prefix("pid ")?.parse().ok()?;
        let mode = match parts.first() {
            Some(mode) if !mode.is_empty() => mode.to_string(),
            _ => return None,
        };
        let detail = match parts.len() {
            1 => None,
            2 => Some(parts[1].to_string()),
            _ => return None,
        };
        Some(Banner { addr: addr.parse().ok()?, mode, detail, pid })
    }
}

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listening on {} (mode {}", self.addr, self.mode)?;
        if let Some(detail) = &self.detail {
            write!(f, ", {detail}")?;
        }
        write!(f, ", pid {})", self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_banner_reads_back_as_it_was_written() {
        for line in [
            "listening on 127.0.0.1:8000 (mode epoll, pid 1234)",
            "listening on [::1]:9 (mode hybrid, 2 event loops, pid 7)",
        ] {
            assert_eq!(Banner::parse(line).map(|b| b.to_string()).as_deref(), Some(line));
        }
    }

    #[test]
    fn other_lines_are_not_banners() {
        for line in [
            "",
            "listening on 127.0.0.1:8000",
            "listening on nowhere (mode epoll, pid 1)",
            "listening on 127.0.0.1:8000 (mode epoll, pid x)",
            "listening on 127.0.0.1:8000 (mode , pid 1)",
            "listening on 127.0.0.1:8000 (mode a, b, c, pid 1)",
        ] {
            assert_eq!(Banner::parse(line), None, "{line:?}");
        }
    }
}
