//! What went wrong on a connection of the client, in words, and the one line
//! that tells all the connections that failed alike.

use std::io;

use super::ClientConfig;
use crate::words::cause;

/// What went wrong on one connection.
#[derive(Debug)]
pub enum Trouble {
    /// Threads mode: the connection's thread could not be started.
    Thread(io::Error),
    /// `connect(2)` failed (or took longer than `--timeout`).
    Connect(io::Error),
    /// Connected, but the socket could not be set up (made non-blocking,
    /// registered with the selector).
    Setup(io::Error),
    /// Nothing came from the server for `--timeout`.
    Silent,
    /// The reply was not whole (no newline yet) `--timeout` after the
    /// ping: what had come, empty if nothing had.
    Unfinished(Vec<u8>),
    /// More than [`super::REPLY_LIMIT`] bytes and still no newline: what
    /// had come.
    TooLong(Vec<u8>),
    /// The server closed the connection before the last reply.
    Closed,
    /// A read or a write failed: the connection was reset, say.
    Exchange(io::Error),
    /// A line that is not `pong` (`error: server busy`, or not our protocol).
    Reply(Vec<u8>),
}

/// An I/O error during the exchange; a read timeout is the server's silence.
impl From<io::Error> for Trouble {
    fn from(e: io::Error) -> Trouble {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Trouble::Silent,
            _ => Trouble::Exchange(e),
        }
    }
}

impl Trouble {
    /// What happened to the connection, as the rest of a sentence that
    /// starts `5 of 5 clients`, with a hint where one helps.
    pub fn say(&self, config: &ClientConfig) -> String {
        let addr = config.addr();
        let (said, hint) = match self {
            Trouble::Thread(e) => (
                format!("could not start a thread: {}", cause(e)),
                Some("fewer --num-clients, or --mode selector"),
            ),
            Trouble::Connect(e) => {
                (format!("could not connect to {addr}: {}", cause(e)), connect_hint(e))
            }
            Trouble::Setup(e) => {
                (format!("could not set up a connection to {addr}: {}", cause(e)), None)
            }
            Trouble::Silent => (
                format!("got no reply within {} s from {addr}", config.timeout.as_secs_f64()),
                Some("a slow server? --timeout waits longer"),
            ),
            Trouble::Unfinished(got) if got.is_empty() => return Trouble::Silent.say(config),
            Trouble::Unfinished(got) => (
                format!(
                    "got no whole reply within {} s from {addr}: {} and no newline",
                    config.timeout.as_secs_f64(),
                    shown(got)
                ),
                Some("a slow server? --timeout waits longer"),
            ),
            Trouble::TooLong(got) => (
                format!(
                    "got a reply of over {} bytes with no newline from {addr}: {}",
                    super::REPLY_LIMIT,
                    shown(got)
                ),
                Some("is that a pingpong server?"),
            ),
            Trouble::Closed => (
                format!(
                    "lost the connection to {addr}: the server closed it before the last reply"
                ),
                None,
            ),
            Trouble::Exchange(e) => (format!("lost the connection to {addr}: {}", cause(e)), None),
            Trouble::Reply(line) => {
                let line = String::from_utf8_lossy(line);
                let line = line.trim_end();
                if line.starts_with("error: ") {
                    let busy = line == "error: server busy";
                    (
                        format!("got `{line}` from {addr}"),
                        busy.then_some("the server is at its --max-clients"),
                    )
                } else {
                    (
                        format!("got an unexpected reply from {addr}: {line:?}"),
                        Some("is that a pingpong server?"),
                    )
                }
            }
        };
        match hint {
            Some(hint) => format!("{said} ({hint})"),
            None => said,
        }
    }
}

/// What arrived, for a person: `5 bytes, "xxxxx"`, or its first 40 bytes
/// and `...` when there is more.
fn shown(got: &[u8]) -> String {
    const SHOWN: usize = 40;
    let start = String::from_utf8_lossy(&got[..got.len().min(SHOWN)]).into_owned();
    let more = if got.len() > SHOWN { "..." } else { "" };
    format!("{} bytes, {start:?}{more}", got.len())
}

/// What to try when `connect` fails.
fn connect_hint(e: &io::Error) -> Option<&'static str> {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::ConnectionRefused, _) => Some("is a server running?"),
        (io::ErrorKind::TimedOut, _) => Some("is the host up? a firewall may drop the packets"),
        (_, Some(libc::EHOSTUNREACH | libc::ENETUNREACH)) => Some("is --host right?"),
        (_, Some(libc::EADDRNOTAVAIL)) => Some("out of local ports? fewer --num-clients"),
        (_, Some(libc::EMFILE | libc::ENFILE)) => {
            Some("fewer --num-clients, or a higher ulimit -n")
        }
        _ => None,
    }
}

/// `failures` (one per connection, each [`Trouble::say`]) as one line per
/// way they failed, most common first, each saying how many of the
/// `clients` failed so: `5 of 5 clients could not connect to ...`, or
/// `the client could not connect to ...` when there is only one.
pub fn alike(failures: &[String], clients: usize) -> Vec<String> {
    let mut alike: Vec<(&str, usize)> = Vec::new();
    for failure in failures {
        match alike.iter_mut().find(|(said, _)| said == failure) {
            Some((_, count)) => *count += 1,
            None => alike.push((failure, 1)),
        }
    }
    alike.sort_by_key(|&(_, count)| std::cmp::Reverse(count)); // stable: ties keep their order
    let who = |count| match clients {
        1 => "the client".to_string(),
        n => format!("{count} of {n} clients"),
    };
    alike.into_iter().map(|(said, count)| format!("{} {said}", who(count))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_that_failed_alike_are_one_line() {
        let refused = "could not connect to 127.0.0.1:8000: connection refused".to_string();
        let busy = "got `error: server busy` from 127.0.0.1:8000".to_string();
        let failures = [busy.clone(), refused.clone(), refused.clone()];
        assert_eq!(
            alike(&failures, 5),
            [format!("2 of 5 clients {refused}"), format!("1 of 5 clients {busy}")]
        );
        assert_eq!(alike(std::slice::from_ref(&refused), 1), [format!("the client {refused}")]);
    }

    #[test]
    fn an_unfinished_reply_shows_its_first_bytes() {
        let config = ClientConfig {
            host: [127, 0, 0, 1].into(),
            port: 8000,
            num_clients: 1,
            messages: 1,
            quiet: true,
            timeout: std::time::Duration::from_secs(2),
        };
        let said = Trouble::TooLong(vec![b'x'; 1025]).say(&config);
        assert!(said.starts_with("got a reply of over 1024 bytes with no newline"), "{said}");
        assert!(said.contains(&format!("1025 bytes, \"{}\"...", "x".repeat(40))), "{said}");
        let said = Trouble::Unfinished(b"pon".to_vec()).say(&config);
        assert!(said.contains("no whole reply within 2 s") && said.contains("3 bytes, \"pon\""));
        assert_eq!(Trouble::Unfinished(Vec::new()).say(&config), Trouble::Silent.say(&config));
    }
}
