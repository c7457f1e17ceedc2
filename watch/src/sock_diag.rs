//! Each listener's backlog, asked of the kernel as `ss` asks it: one
//! NETLINK_SOCK_DIAG request (sock_diag(7)) for the TCP sockets in LISTEN.
//!
//! `/proc/net/tcp` has a listener's accept queue (its rx_queue column) but
//! not the limit of that queue. inet_diag has both: for a listener,
//! `idiag_rqueue` is the accept queue now and `idiag_wqueue` the backlog
//! (net/ipv4/tcp_diag.c). It needs no privilege.
//!
//! The request and the answers are plain bytes in the host's order
//! (netlink's), laid out by hand here: no `unsafe`, and every offset is
//! written beside the C struct it comes from.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST | NLM_F_DUMP` (linux/netlink.h).
const FLAGS: u16 = 0x1 | 0x300;
/// `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `TCP_LISTEN` (10) as a bit of `idiag_states`.
const LISTEN_ONLY: u32 = 1 << 10;
/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDR: usize = 16;

/// Backlog by socket inode, for every TCP listener of this network
/// namespace, IPv4 and IPv6.
pub fn listener_backlogs() -> io::Result<BTreeMap<u64, u32>> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    // A kernel that does not answer must not hang the view.
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::seconds(1))?;
    let mut backlogs = BTreeMap::new();
    for family in [nix::libc::AF_INET as u8, nix::libc::AF_INET6 as u8] {
        socket::sendto(
            fd.as_raw_fd(),
            &request(family),
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut buf = vec![0u8; 32 << 10];
        'answers: loop {
            let n = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            for message in messages(&buf[..n]) {
                match message {
                    Message::Done => break 'answers,
                    Message::Error(errno) => {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    Message::Socket { inode, wqueue } => {
                        backlogs.insert(inode, wqueue);
                    }
                    Message::Other => {}
                }
            }
            if n == 0 {
                break;
            }
        }
    }
    Ok(backlogs)
}

/// `nlmsghdr` + `struct inet_diag_req_v2` asking for TCP listeners of
/// `family`: 16 + 56 bytes.
fn request(family: u8) -> Vec<u8> {
    let len = (NLMSG_HDR + 56) as u32;
    let mut bytes = Vec::with_capacity(len as usize);
    bytes.extend(len.to_ne_bytes());
    bytes.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    bytes.extend(FLAGS.to_ne_bytes());
    bytes.extend(1u32.to_ne_bytes()); // nlmsg_seq
    bytes.extend(0u32.to_ne_bytes()); // nlmsg_pid: the kernel
                                      // inet_diag_req_v2: sdiag_family, sdiag_protocol, idiag_ext, pad.
    bytes.extend([family, nix::libc::IPPROTO_TCP as u8, 0, 0]);
    bytes.extend(LISTEN_ONLY.to_ne_bytes()); // idiag_states
    bytes.extend([0u8; 48]); // struct inet_diag_sockid id: any socket
    bytes
}

#[derive(Debug, PartialEq)]
enum Message {
    Socket { inode: u64, wqueue: u32 },
    Done,
    Error(i32),
    Other,
}

/// The netlink messages of one datagram.
fn messages(mut bytes: &[u8]) -> Vec<Message> {
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let mut out = Vec::new();
    while let Some(len) = u32_at(bytes, 0) {
        let len = len as usize;
        if len < NLMSG_HDR || len > bytes.len() {
            break;
        }
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let body = &bytes[NLMSG_HDR..len];
        out.push(match kind {
            NLMSG_DONE => Message::Done,
            // struct nlmsgerr: int error (negative errno), then the request.
            NLMSG_ERROR => Message::Error(-(u32_at(body, 0).unwrap_or(0) as i32)),
            // struct inet_diag_msg: family, state, timer, retrans (4 bytes),
            // id (48), expires @52, rqueue @56, wqueue @60, uid @64, inode @68.
            SOCK_DIAG_BY_FAMILY => match (u32_at(body, 60), u32_at(body, 68)) {
                (Some(wqueue), Some(inode)) => Message::Socket { inode: inode.into(), wqueue },
                _ => Message::Other,
            },
            _ => Message::Other,
        });
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_as_long_as_it_says() {
        let bytes = request(nix::libc::AF_INET as u8);
        assert_eq!(bytes.len(), 72);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 72);
    }

    #[test]
    fn answers_are_read_up_to_done() {
        let mut datagram = Vec::new();
        let mut socket = vec![0u8; NLMSG_HDR + 72];
        socket[0..4].copy_from_slice(&((NLMSG_HDR + 72) as u32).to_ne_bytes());
        socket[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        socket[NLMSG_HDR + 60..NLMSG_HDR + 64].copy_from_slice(&128u32.to_ne_bytes());
        socket[NLMSG_HDR + 68..NLMSG_HDR + 72].copy_from_slice(&603064u32.to_ne_bytes());
        datagram.extend(&socket);
        let mut done = vec![0u8; NLMSG_HDR + 4];
        done[0..4].copy_from_slice(&((NLMSG_HDR + 4) as u32).to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        datagram.extend(&done);
        assert_eq!(
            messages(&datagram),
            [Message::Socket { inode: 603064, wqueue: 128 }, Message::Done]
        );
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_backlog() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
        let inode: u64 = link
            .to_string_lossy()
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        // std listens with a backlog of 128 on Linux (SOMAXCONN may lower it).
        let backlogs = listener_backlogs().unwrap();
        assert!(backlogs.get(&inode).is_some_and(|b| (1..=4096).contains(b)), "{backlogs:?}");
    }
}
