//! `--trace` for the ring: each setup, mmap, register and enter (and, at the
//! end, the unregister, munmaps and close) narrated as
//! strace prints it, and under each enter, as comment lines, what strace
//! cannot show: the SQEs it submitted and the CQEs reaped after it.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::abi::*;
use super::sys::Mapping;
use crate::trace;

/// A comment line under the last call: `    # sqe recv fd=7 ...`.
pub fn comment(text: fmt::Arguments) {
    let line = format!("    # {text}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// [`Mapping::ring`], narrated:
/// `mmap(NULL, 8512, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_POPULATE, 3, 0) = 0x7f...`.
pub(crate) fn mmap(on: bool, fd: &OwnedFd, len: usize, offset: i64) -> io::Result<Mapping> {
    let r = Mapping::ring(fd, len, offset);
    if on {
        let (what, off) = match offset {
            IORING_OFF_SQ_RING => ("the SQ and CQ rings, in one mapping (FEAT_SINGLE_MMAP)", "0"),
            _ => ("the SQE array", "0x10000000"),
        };
        let call = format_args!(
            "mmap(NULL, {len}, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_POPULATE, {}, {off})",
            fd.as_raw_fd()
        );
        trace::line(call, &mapped(&r), format_args!("{what}"));
    }
    r
}

/// [`Mapping::anonymous`], narrated.
pub(crate) fn mmap_anonymous(on: bool, len: usize) -> io::Result<Mapping> {
    let r = Mapping::anonymous(len);
    if on {
        let call = format_args!(
            "mmap(NULL, {len}, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
        );
        trace::line(call, &mapped(&r), format_args!("the provided buffers and their ring"));
    }
    r
}

/// [`Mapping::unmap`], narrated: `munmap(0x7f..., 16384) = 0`.
pub(crate) fn munmap(on: bool, mapping: &mut Mapping, what: &str) {
    let (addr, len) = (mapping.addr(), mapping.len());
    let r = mapping.unmap();
    if on && len > 0 {
        let call = format_args!("munmap({addr:#x}, {len})");
        trace::line(call, &trace::result(r.as_ref().map(|()| 0)), format_args!("{what}"));
    }
}

/// close(2) of the ring's fd, narrated.
pub(crate) fn close(on: bool, fd: OwnedFd, what: &str) {
    let raw = fd.as_raw_fd();
    let r = nix::unistd::close(fd).map_err(io::Error::from);
    if on {
        trace::line(
            format_args!("close({raw})"),
            &trace::result(r.as_ref().map(|()| 0)),
            format_args!("{what}"),
        );
    }
}

fn mapped(r: &io::Result<Mapping>) -> String {
    match r {
        Ok(m) => format!("{:#x}", m.addr()),
        Err(e) => trace::result(Err(e)),
    }
}

const SETUP_FLAGS: &[(u64, &str)] = &[
    (IORING_SETUP_CQSIZE as u64, "IORING_SETUP_CQSIZE"),
    (IORING_SETUP_SUBMIT_ALL as u64, "IORING_SETUP_SUBMIT_ALL"),
    (IORING_SETUP_COOP_TASKRUN as u64, "IORING_SETUP_COOP_TASKRUN"),
    (IORING_SETUP_SINGLE_ISSUER as u64, "IORING_SETUP_SINGLE_ISSUER"),
    (IORING_SETUP_DEFER_TASKRUN as u64, "IORING_SETUP_DEFER_TASKRUN"),
];

/// io_uring_setup(2), narrated: what was asked, and (abbreviated) what the
/// kernel answered.
pub(crate) fn setup(entries: u32, asked: &Params, got: &Params, r: &io::Result<OwnedFd>) {
    let flags = trace::flags(u64::from(asked.flags), SETUP_FLAGS);
    let (result, why) = match r {
        Ok(fd) => (
            fd.as_raw_fd().to_string(),
            format!(
                "a ring: {} SQ entries, {} CQ entries, features {:#x}",
                got.sq_entries, got.cq_entries, got.features
            ),
        ),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            (trace::result(Err(e)), "flags this kernel does not know: try fewer".to_string())
        }
        Err(e) => (trace::result(Err(e)), "no io_uring here".to_string()),
    };
    // strace goes on with the features and every offset the kernel wrote.
    let call = format_args!(
        "io_uring_setup({entries}, {{flags={flags}, sq_thread_cpu=0, sq_thread_idle=0, \
         sq_entries={}, cq_entries={}, ...}})",
        got.sq_entries, got.cq_entries
    );
    trace::line(call, &result, format_args!("{why}"));
}

/// io_uring_register(2) of a buffer ring, narrated, `why` as its comment.
pub(crate) fn register(fd: i32, op: &str, reg: &BufReg, r: &io::Result<()>, why: &str) {
    // strace prints a zero address as NULL (as an unregister passes it).
    let addr = match reg.ring_addr {
        0 => "NULL".to_string(),
        addr => format!("{addr:#x}"),
    };
    let call = format_args!(
        "io_uring_register({fd}, {op}, {{ring_addr={addr}, ring_entries={}, bgid={}}}, 1)",
        reg.ring_entries, reg.bgid
    );
    trace::line(call, &trace::result(r.as_ref().map(|()| 0)), format_args!("{why}"));
}

/// The arguments of one io_uring_enter(2).
pub(crate) struct EnterCall {
    pub fd: i32,
    pub to_submit: u32,
    pub min_complete: u32,
    pub flags: u32,
}

const ENTER_FLAGS: &[(u64, &str)] = &[
    (IORING_ENTER_GETEVENTS as u64, "IORING_ENTER_GETEVENTS"),
    (IORING_ENTER_EXT_ARG as u64, "IORING_ENTER_EXT_ARG"),
];

/// io_uring_enter(2), narrated as strace prints it:
/// `io_uring_enter(3, 2, 1, IORING_ENTER_GETEVENTS, NULL, 0) = 2`.
pub(crate) fn enter(
    call: &EnterCall,
    arg: Option<&GeteventsArg>,
    r: &io::Result<u32>,
    timeout: Option<Duration>,
) {
    let flags = trace::flags(u64::from(call.flags), ENTER_FLAGS);
    let (arg, size) = match arg {
        Some(arg) => (format!("{:p}", arg as *const GeteventsArg), size_of::<GeteventsArg>()),
        None => ("NULL".to_string(), 0),
    };
    let EnterCall { fd, to_submit, min_complete, .. } = *call;
    let text =
        format_args!("io_uring_enter({fd}, {to_submit}, {min_complete}, {flags}, {arg}, {size})");
    let waiting = match (min_complete, timeout) {
        (0, _) => "no wait".to_string(),
        (n, None) => format!("wait for {n}"),
        (n, Some(t)) => format!("wait for {n}, at most {t:.3?}"),
    };
    let why = match r {
        Ok(n) => format!("submitted {n} of {to_submit}; {waiting}"),
        Err(e) => match e.raw_os_error() {
            Some(libc::ETIME) => "timed out: a deadline is due".to_string(),
            Some(libc::EINTR) => "interrupted by a signal: reap, carry on".to_string(),
            _ => format!("{waiting}: {}", crate::words::cause(e)),
        },
    };
    trace::line(text, &trace::result(r.as_ref().map(|&n| i64::from(n))), format_args!("{why}"));
}
