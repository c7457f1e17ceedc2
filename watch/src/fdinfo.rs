//! `/proc/PID/fdinfo/N`, read by hand: no crate parses the lines that
//! epoll and io_uring add to it.
//!
//! Every fd has `pos:`, `flags:` (octal, as open(2) takes them), `mnt_id:`
//! and `ino:`. After those, the file's kind may add its own lines:
//!
//! - epoll (fs/eventpoll.c, `ep_show_fdinfo`), one line per fd in the
//!   interest list: `tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x`;
//! - io_uring (io_uring/fdinfo.c): `SqHead:`, `SqTail:`, `CqHead:`,
//!   `CqTail:`, ..., `SQEs:` and `CQEs:` each followed by one line per
//!   entry, `PollList:` followed by one line per request armed on a file;
//! - eventfd: `eventfd-count:` (hex).

use serde::Serialize;

/// O_NONBLOCK in the `flags:` line (octal 04000 on Linux).
const O_NONBLOCK: u32 = 0o4000;

/// The `flags:` line, as a number.
pub fn flags(fdinfo: &str) -> Option<u32> {
    u32::from_str_radix(field(fdinfo, "flags")?, 8).ok()
}

/// Whether the fd has O_NONBLOCK: a call on it returns EAGAIN rather
/// than wait. `None` if fdinfo has no flags line.
pub fn nonblocking(fdinfo: &str) -> Option<bool> {
    flags(fdinfo).map(|flags| flags & O_NONBLOCK != 0)
}

/// The `ino:` line: the inode of the file the fd is open on (decimal here,
/// where the epoll lines print it in hex).
pub fn ino(fdinfo: &str) -> Option<u64> {
    field(fdinfo, "ino")?.parse().ok()
}

/// `eventfd-count:` (hex): what a read of the eventfd would return now.
pub fn eventfd_count(fdinfo: &str) -> Option<u64> {
    u64::from_str_radix(field(fdinfo, "eventfd-count")?, 16).ok()
}

/// One entry of an epoll interest list, as `ep_show_fdinfo` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollEntry {
    /// The fd number at registration (`tfd`): a close or dup2 since does
    /// not change it, which is why `ino` is there to compare.
    pub tfd: i32,
    /// The events asked for, EPOLLERR|EPOLLHUP included (epoll_ctl adds
    /// them to every registration).
    pub events: u32,
    /// The cookie the process registered (`epoll_event.data`): pingpong
    /// puts the fd itself there, Python's selectors the fd too.
    pub data: u64,
    /// The inode of the file registered (hex in the line).
    pub ino: u64,
}

/// The interest list of an epoll fd's fdinfo (empty for any other fd).
pub fn epoll_entries(fdinfo: &str) -> Vec<EpollEntry> {
    fdinfo.lines().filter_map(epoll_entry).collect()
}

fn epoll_entry(line: &str) -> Option<EpollEntry> {
    let rest = line.trim_start().strip_prefix("tfd:")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    // tfd N events: X data: D pos:P ino:I sdev:S
    let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1));
    let inline = |key: &str| words.iter().find_map(|w| w.strip_prefix(key));
    Some(EpollEntry {
        tfd: words.first()?.parse().ok()?,
        events: u32::from_str_radix(after("events:")?, 16).ok()?,
        data: u64::from_str_radix(after("data:")?, 16).ok()?,
        ino: u64::from_str_radix(inline("ino:")?, 16).ok()?,
    })
}

/// The epoll event bits, in the kernel's names (include/uapi/linux/eventpoll.h).
const EVENT_NAMES: &[(u32, &str)] = &[
    (0x001, "EPOLLIN"),
    (0x002, "EPOLLPRI"),
    (0x004, "EPOLLOUT"),
    (0x008, "EPOLLERR"),
    (0x010, "EPOLLHUP"),
    (0x040, "EPOLLRDNORM"),
    (0x080, "EPOLLRDBAND"),
    (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"),
    (0x400, "EPOLLMSG"),
    (0x2000, "EPOLLRDHUP"),
    (1 << 28, "EPOLLEXCLUSIVE"),
    (1 << 29, "EPOLLWAKEUP"),
    (1 << 30, "EPOLLONESHOT"),
    (1 << 31, "EPOLLET"),
];

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLOUT: u32 = 0x004;
/// The two bits every registration has, asked for or not.
pub const ALWAYS: u32 = 0x008 | 0x010;

/// `0x19` → `["EPOLLIN", "EPOLLERR", "EPOLLHUP"]`; unknown bits as hex.
pub fn event_names(events: u32) -> Vec<String> {
    let mut names: Vec<String> = EVENT_NAMES
        .iter()
        .filter(|(bit, _)| events & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let known = EVENT_NAMES.iter().fold(0, |all, (bit, _)| all | bit);
    if events & !known != 0 {
        names.push(format!("{:#x}", events & !known));
    }
    names
}

/// The events a program asked for, without the EPOLLERR|EPOLLHUP the
/// kernel adds to every entry: `EPOLLIN|EPOLLOUT`, or `-` for none.
pub fn asked_for(events: u32) -> String {
    let names = event_names(events & !ALWAYS);
    if names.is_empty() {
        return "-".to_string();
    }
    names.join("|")
}

/// An io_uring instance as its fdinfo shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ring {
    /// The submission queue: the process writes SQEs at the tail, the
    /// kernel takes them from the head.
    pub sq_head: u32,
    pub sq_tail: u32,
    pub sq_entries: u32,
    /// The completion queue: the kernel writes CQEs at the tail, the
    /// process reaps them from the head.
    pub cq_head: u32,
    pub cq_tail: u32,
    pub cq_entries: u32,
    /// Submitted, not yet taken by the kernel (SqTail - SqHead).
    pub sqes_pending: u32,
    /// Completed, not yet reaped by the process (CqTail - CqHead).
    pub cqes_ready: u32,
    /// Requests taken by the kernel and armed on a file, waiting for it to
    /// be ready (one `PollList:` line each): the requests in flight that a
    /// server's ring holds while it waits for clients. Their ops, by name.
    pub in_flight: Vec<String>,
    /// Completions that did not fit the CQ ring (`CqOverflowList:` lines).
    pub overflow: u32,
}

/// The ring of an io_uring fd's fdinfo; `None` for any other fd.
pub fn ring(fdinfo: &str) -> Option<Ring> {
    let number = |key: &str| -> Option<u32> {
        let value = field(fdinfo, key)?;
        match value.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    };
    let (sq_head, sq_tail) = (number("SqHead")?, number("SqTail")?);
    let (cq_head, cq_tail) = (number("CqHead")?, number("CqTail")?);
    Some(Ring {
        sq_head,
        sq_tail,
        sq_entries: number("SqMask").map_or(0, |mask| mask.wrapping_add(1)),
        cq_head,
        cq_tail,
        cq_entries: number("CqMask").map_or(0, |mask| mask.wrapping_add(1)),
        sqes_pending: sq_tail.wrapping_sub(sq_head),
        cqes_ready: cq_tail.wrapping_sub(cq_head),
        in_flight: section(fdinfo, "PollList")
            .iter()
            .map(|line| {
                let op = line.trim().strip_prefix("op=").and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
                });
                op.map_or_else(|| line.trim().to_string(), op_name)
            })
            .collect(),
        overflow: section(fdinfo, "CqOverflowList").len() as u32,
    })
}

/// The lines indented under `KEY:` (until the next unindented line).
fn section<'a>(fdinfo: &'a str, key: &str) -> Vec<&'a str> {
    let mut lines = fdinfo.lines().skip_while(|line| line.split(':').next() != Some(key));
    if lines.next().is_none() {
        return Vec::new();
    }
    lines.take_while(|line| line.starts_with([' ', '\t'])).collect()
}

/// io_uring's op numbers (include/uapi/linux/io_uring.h, `IORING_OP_*`).
fn op_name(op: u32) -> String {
    const OPS: &[&str] = &[
        "NOP",
        "READV",
        "WRITEV",
        "FSYNC",
        "READ_FIXED",
        "WRITE_FIXED",
        "POLL_ADD",
        "POLL_REMOVE",
        "SYNC_FILE_RANGE",
        "SENDMSG",
        "RECVMSG",
        "TIMEOUT",
        "TIMEOUT_REMOVE",
        "ACCEPT",
        "ASYNC_CANCEL",
        "LINK_TIMEOUT",
        "CONNECT",
        "FALLOCATE",
        "OPENAT",
        "CLOSE",
        "FILES_UPDATE",
        "STATX",
        "READ",
        "WRITE",
        "FADVISE",
        "MADVISE",
        "SEND",
        "RECV",
        "OPENAT2",
        "EPOLL_CTL",
        "SPLICE",
        "PROVIDE_BUFFERS",
        "REMOVE_BUFFERS",
        "TEE",
        "SHUTDOWN",
        "RENAMEAT",
        "UNLINKAT",
        "MKDIRAT",
        "SYMLINKAT",
        "LINKAT",
        "MSG_RING",
        "FSETXATTR",
        "SETXATTR",
        "FGETXATTR",
        "GETXATTR",
        "SOCKET",
        "URING_CMD",
        "SEND_ZC",
        "SENDMSG_ZC",
    ];
    OPS.get(op as usize).map_or_else(|| format!("op {op}"), |name| name.to_string())
}

/// The value of a `key:\tvalue` line.
fn field<'a>(fdinfo: &'a str, key: &str) -> Option<&'a str> {
    fdinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An epoll server's epoll fd, as Linux 6 printed it.
    const EPOLL: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\n\
        tfd:        8 events:       19 data:                8  pos:0 ino:933fe sdev:9\n\
        tfd:        3 events:       19 data:                3  pos:0 ino:933b8 sdev:9\n\
        tfd:        5 events:       1d data:                5  pos:0 ino:933b9 sdev:f\n";

    #[test]
    fn an_interest_list_is_read_line_by_line() {
        let entries = epoll_entries(EPOLL);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], EpollEntry { tfd: 8, events: 0x19, data: 8, ino: 0x933fe });
        assert_eq!(event_names(entries[0].events), ["EPOLLIN", "EPOLLERR", "EPOLLHUP"]);
        assert_eq!(asked_for(entries[0].events), "EPOLLIN");
        assert_eq!(asked_for(entries[2].events), "EPOLLIN|EPOLLOUT");
        assert_eq!(asked_for(0x8000_0000 | 0x2001), "EPOLLIN|EPOLLRDHUP|EPOLLET");
        assert_eq!(asked_for(ALWAYS), "-");
        assert_eq!(ino(EPOLL), Some(1039));
        assert_eq!(nonblocking(EPOLL), Some(false));
    }

    #[test]
    fn o_nonblock_is_read_from_the_octal_flags() {
        assert_eq!(nonblocking("pos:\t0\nflags:\t02004002\n"), Some(true));
        assert_eq!(nonblocking("pos:\t0\nflags:\t02000002\n"), Some(false));
        assert_eq!(nonblocking("pos:\t0\n"), None);
        assert!(epoll_entries("pos:\t0\nflags:\t02\n").is_empty());
    }

    #[test]
    fn a_ring_shows_its_queues_and_the_requests_it_holds() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t603674\nSqMask:\t0xff\n\
            SqHead:\t3\nSqTail:\t5\nCachedSqHead:\t3\nCqMask:\t0xfff\nCqHead:\t1\nCqTail:\t2\n\
            CachedCqTail:\t2\nSQEs:\t0\nCQEs:\t0\nSqThread:\t-1\nUserFiles:\t0\n\
            PollList:\n  op=13, task_works=0\n  op=27, task_works=0\nCqOverflowList:\n\
            NAPI:\tdisabled\n";
        let ring = ring(fdinfo).unwrap();
        assert_eq!((ring.sq_entries, ring.cq_entries), (256, 4096));
        assert_eq!((ring.sqes_pending, ring.cqes_ready, ring.overflow), (2, 1, 0));
        assert_eq!(ring.in_flight, ["ACCEPT", "RECV"]);
        assert_eq!(super::ring(EPOLL), None);
    }

    #[test]
    fn an_eventfd_count_is_hex() {
        let fdinfo = "pos:\t0\nflags:\t02004002\neventfd-count:               1a\neventfd-id: 2\n";
        assert_eq!(eventfd_count(fdinfo), Some(26));
    }
}
