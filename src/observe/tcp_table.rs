//! The kernel's table of TCP sockets, as `/proc/net/tcp` and
//! `/proc/net/tcp6` show it (proc_net_tcp(5)): every socket of this
//! network namespace, whoever owns it, with its state and its queues.
//!
//! It sees both ends of a loopback connection, so a client on the same
//! host can tell whether the server closed its end: a socket left in
//! `CLOSE_WAIT` is one whose peer has gone and whose owner never called
//! close(2). `ss -tan` reads the same table (through netlink).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `st` 08: the peer has closed, this end has not.
pub const CLOSE_WAIT: u8 = 0x08;
/// `st` 0A: a listening socket.
pub const LISTEN: u8 = 0x0A;

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRow {
    /// This socket's address (an IPv4-mapped IPv6 address is given as IPv4,
    /// as the peer sees it).
    pub local: SocketAddr,
    /// The peer's address (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// The state, `st`: 01 ESTABLISHED ... 0A LISTEN ([`state_name`]).
    pub state: u8,
    /// Bytes queued to send (`tx_queue`) and received but unread (`rx_queue`);
    /// for a listener, `rx_queue` is the accept queue now.
    pub tx_queue: u64,
    pub rx_queue: u64,
    /// The socket's inode: `/proc/PID/fd/N -> socket:[INODE]` of its owner.
    pub inode: u64,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6.
pub fn table() -> io::Result<Vec<TcpRow>> {
    let mut rows = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(file) {
            Ok(text) => rows.extend(text.lines().skip(1).filter_map(parse_row)),
            // A kernel built without IPv6 has no tcp6.
            Err(e) if e.kind() == io::ErrorKind::NotFound && file.ends_with('6') => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{file}: {e}"))),
        }
    }
    Ok(rows)
}

/// The kernel's name for a state (include/net/tcp_states.h), as `ss` says it.
pub fn state_name(state: u8) -> &'static str {
    match state {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        0x0C => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// `  0: 0100007F:1F40 0100007F:D2A4 01 00000000:00000005 ... 0 12345 ...`
fn parse_row(line: &str) -> Option<TcpRow> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (tx, rx) = fields.get(4)?.split_once(':')?;
    Some(TcpRow {
        local: parse_addr(fields.get(1)?)?,
        remote: parse_addr(fields.get(2)?)?,
        state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// `0100007F:1F40` → 127.0.0.1:8000. The address is printed as the 32-bit
/// words the kernel holds in network order, each read as a native integer
/// (`%08X`): its native bytes are the address's bytes. The port is a plain
/// number.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in (0..ip.len()).step_by(8) {
        let word = u32::from_str_radix(ip.get(word..word + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn rows_of_both_tables_are_read() {
        let v4 = "   0: 0100007F:1F40 0100007F:D2A4 08 00000000:00000005 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let row = parse_row(v4).unwrap();
        assert_eq!(row.local, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(row.remote, "127.0.0.1:53924".parse().unwrap());
        assert_eq!((row.state, state_name(row.state)), (CLOSE_WAIT, "CLOSE_WAIT"));
        assert_eq!((row.tx_queue, row.rx_queue, row.inode), (0, 5, 4242));
        let mapped = "   1: 0000000000000000FFFF00000100007F:1F40 00000000000000000000000001000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1";
        let row = parse_row(mapped).unwrap();
        assert_eq!(row.local, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(row.remote, "[::1]:0".parse().unwrap());
        assert_eq!(row.state, LISTEN);
        assert_eq!(parse_row("  sl  local_address rem_address   st"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_listener_of_ours_is_in_the_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rows = table().unwrap();
        assert!(rows.iter().any(|row| row.local == addr && row.state == LISTEN), "{addr}");
    }
}
