//! The course's clients: many connections, each sending pings and reading
//! pongs, driven either by a thread each or by one thread and a selector.
//!
//! - [`run_threads`]: one thread per connection, blocking calls, printing
//!   `client 3: pong 7/10` as replies come, so the interleaving of the
//!   clients across the server's modes is visible.
//! - [`run_selector`]: the course's multi-connection client: one thread,
//!   non-blocking sockets, one [`Selector`] holding each connection's record
//!   (id, bytes sent and received, output still to send).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::find_newline;
use crate::selector::{Events, Selector, EVENT_READ, EVENT_WRITE};

/// What `pingpong client` was asked to do.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub num_clients: usize,
    pub messages: usize,
    /// No line per reply, only the summary.
    pub quiet: bool,
    /// Give up on replies that have not come after this long.
    pub timeout: Duration,
}

/// How it went: what the exit status is decided from.
#[derive(Debug, Default)]
pub struct ClientReport {
    pub replies: usize,
    pub expected: usize,
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl ClientReport {
    /// Every reply arrived and was right.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.replies == self.expected
    }

    /// `5 clients x 10 messages: 50/50 replies in 0.012 s, 0 errors`.
    pub fn summary(&self, config: &ClientConfig) -> String {
        format!(
            "{} clients x {} messages: {}/{} replies in {:.3} s, {} errors",
            config.num_clients,
            config.messages,
            self.replies,
            self.expected,
            self.elapsed.as_secs_f64(),
            self.errors.len()
        )
    }
}

/// One thread per connection, each: connect, then `messages` times send
/// `ping` and read `pong`, then half-close and expect EOF.
pub fn run_threads(config: &ClientConfig) -> ClientReport {
    let start = Instant::now();
    let report = Mutex::new(ClientReport {
        expected: config.num_clients * config.messages,
        ..ClientReport::default()
    });
    thread::scope(|scope| {
        for id in 1..=config.num_clients {
            let report = &report;
            scope.spawn(move || {
                let outcome = ping_pong(id, config, || {
                    if let Ok(mut r) = report.lock() {
                        r.replies += 1;
                    }
                });
                if let Err(e) = outcome {
                    if let Ok(mut r) = report.lock() {
                        r.errors.push(format!("client {id}: {e}"));
                    }
                }
            });
        }
    });
    let mut report = report.into_inner().unwrap_or_default();
    report.elapsed = start.elapsed();
    report
}

fn ping_pong(id: usize, config: &ClientConfig, mut on_reply: impl FnMut()) -> io::Result<()> {
    let stream = TcpStream::connect((config.host.as_str(), config.port))?;
    stream.set_read_timeout(Some(config.timeout))?;
    let mut writer = &stream;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    for i in 1..=config.messages {
        writer.write_all(b"ping\n")?;
        line.clear();
        reader.read_line(&mut line)?;
        if line != "pong\n" {
            return Err(unexpected(&line));
        }
        on_reply();
        if !config.quiet {
            println!("client {id}: pong {i}/{}", config.messages);
        }
    }
    stream.shutdown(Shutdown::Write)?;
    line.clear();
    match reader.read_line(&mut line)? {
        0 => Ok(()),
        _ => Err(unexpected(&line)),
    }
}

fn unexpected(line: &str) -> io::Error {
    let what = if line.is_empty() {
        "connection closed".to_string()
    } else {
        format!("unexpected reply {line:?}")
    };
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One connection of the selector client: the course's
/// `SimpleNamespace(connid=, msg_total=, recv_total=, messages=, outb=)`.
struct Conn {
    id: usize,
    stream: TcpStream,
    /// Pongs received so far.
    received: usize,
    /// Output not yet taken by the kernel.
    outb: Vec<u8>,
    /// Input not yet a whole line.
    inb: Vec<u8>,
    bytes_sent: usize,
    bytes_received: usize,
    /// All pongs in and our FIN sent: waiting for the server's EOF.
    done_sending: bool,
}

/// All connections from one thread with a selector: each sends a ping, waits
/// for its pong, sends the next, `messages` times, then half-closes.
pub fn run_selector(config: &ClientConfig) -> io::Result<ClientReport> {
    let start = Instant::now();
    let mut report =
        ClientReport { expected: config.num_clients * config.messages, ..ClientReport::default() };
    let mut selector: Selector<Conn> = Selector::new()?;
    for id in 1..=config.num_clients {
        let stream = TcpStream::connect((config.host.as_str(), config.port))?;
        stream.set_nonblocking(true)?;
        // The first ping is queued now and goes out when the socket is
        // writable; with nothing to send, say so at once (our FIN).
        let nothing_to_send = config.messages == 0;
        if nothing_to_send {
            stream.shutdown(Shutdown::Write)?;
        }
        let conn = Conn {
            id,
            stream,
            received: 0,
            outb: if nothing_to_send { Vec::new() } else { b"ping\n".to_vec() },
            inb: Vec::new(),
            bytes_sent: 0,
            bytes_received: 0,
            done_sending: nothing_to_send,
        };
        let fd = conn.stream.as_raw_fd();
        selector.register(fd, interest(&conn), conn)?;
    }
    let deadline = start + config.timeout;
    let mut ready = Vec::new();
    while !selector.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            for key in selector.keys() {
                let c = &key.data;
                report.errors.push(format!(
                    "connection {}: timed out with {}/{} replies ({} bytes sent, {} received, {} pending)",
                    c.id, c.received, config.messages, c.bytes_sent, c.bytes_received, c.outb.len()
                ));
            }
            break;
        }
        selector.select(Some(deadline - now), &mut ready)?;
        for &(fd, events) in &ready {
            let Some(key) = selector.ready_key_mut(fd) else {
                continue;
            };
            match service(&mut key.data, events, config, &mut report) {
                Ok(Some(interest)) => selector.modify(fd, interest)?,
                Ok(None) => close(&mut selector, fd, config, None),
                Err(e) => close(&mut selector, fd, config, Some((e, &mut report))),
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn close(
    selector: &mut Selector<Conn>,
    fd: RawFd,
    config: &ClientConfig,
    error: Option<(io::Error, &mut ClientReport)>,
) {
    if let Ok(conn) = selector.unregister(fd) {
        if let Some((e, report)) = error {
            report.errors.push(format!("connection {}: {e}", conn.id));
        } else if !config.quiet {
            println!(
                "connection {} closed: {} bytes sent, {} received",
                conn.id, conn.bytes_sent, conn.bytes_received
            );
        }
    }
}

/// Service one ready connection; returns the events it needs next, or
/// `None` when the server has closed it after the last reply.
fn service(
    conn: &mut Conn,
    events: Events,
    config: &ClientConfig,
    report: &mut ClientReport,
) -> io::Result<Option<Events>> {
    if events.is_writable() && !conn.outb.is_empty() {
        let n = match (&conn.stream).write(&conn.outb) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        conn.outb.drain(..n);
        conn.bytes_sent += n;
    }
    if events.is_readable() {
        let mut buf = [0u8; 4096];
        let n = match io::Read::read(&mut &conn.stream, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(interest(conn))),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if conn.done_sending && conn.inb.is_empty() {
                Ok(None)
            } else {
                Err(unexpected(""))
            };
        }
        conn.bytes_received += n;
        conn.inb.extend_from_slice(&buf[..n]);
        while let Some(end) = find_newline(&conn.inb) {
            let line: Vec<u8> = conn.inb.drain(..=end).collect();
            if line != b"pong\n" || conn.done_sending {
                return Err(unexpected(&String::from_utf8_lossy(&line)));
            }
            conn.received += 1;
            report.replies += 1;
            if !config.quiet {
                println!("connection {}: pong {}/{}", conn.id, conn.received, config.messages);
            }
            if conn.received < config.messages {
                conn.outb.extend_from_slice(b"ping\n");
            } else {
                conn.stream.shutdown(Shutdown::Write)?;
                conn.done_sending = true;
            }
        }
    }
    Ok(Some(interest(conn)))
}

/// READ always (a reply or the server's EOF may come); WRITE while output waits.
fn interest(conn: &Conn) -> Events {
    if conn.outb.is_empty() {
        EVENT_READ
    } else {
        EVENT_READ | EVENT_WRITE
    }
}
