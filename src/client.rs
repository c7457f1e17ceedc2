//! The course's clients: many connections, each sending pings and reading
//! pongs, driven either by a thread each or by one thread and a selector.
//!
//! - [`run_threads`]: one thread per connection, blocking calls, printing
//!   `client 3: pong 7/10` as replies come, so the interleaving of the
//!   clients across the server's modes is visible.
//! - [`run_selector`]: the course's multi-connection client: one thread,
//!   non-blocking sockets, one [`Selector`] holding each connection's record
//!   (id, bytes sent and received, output still to send).
//!
//! Both tell what went wrong the same way: a connection that fails is one
//! [`Trouble`] (`client/trouble.rs`), said in words, and connections that
//! failed alike are one line, `5 of 5 clients could not connect to
//! 127.0.0.1:8000: connection refused (is a server running?)`, not five.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::find_newline;
use crate::selector::{Events, Selector, EVENT_READ, EVENT_WRITE};
use crate::words::{self, plural};
pub use trouble::Trouble;

mod trouble;

/// `--num-clients`: at least one; beyond that, the fds and threads a host
/// gives one process run out first, and say so.
pub const NUM_CLIENTS: RangeInclusive<u64> = 1..=100_000;

/// The longest reply line the client takes: a `pong`, or an `error: ...`
/// line, is far shorter. A server that sends more without a newline is
/// wrong (or not a pingpong server), and the client says so instead of
/// keeping every byte while it waits for a newline that may never come.
pub const REPLY_LIMIT: usize = 1024;

/// What `pingpong client` was asked to do.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub host: IpAddr,
    pub port: u16,
    pub num_clients: usize,
    pub messages: usize,
    /// No line per reply, only the summary.
    pub quiet: bool,
    /// Give up on a connection, or a reply, that has not come after this
    /// long: the whole reply, counted from the ping, so that a server
    /// trickling bytes without a newline cannot hold the client forever.
    pub timeout: Duration,
}

impl ClientConfig {
    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// How it went: what the exit status is decided from.
#[derive(Debug, Default)]
pub struct ClientReport {
    pub replies: usize,
    pub expected: usize,
    /// One entry per connection that failed: what happened to it, in words
    /// ([`Trouble::say`]).
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl ClientReport {
    /// Every reply arrived and was right.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.replies == self.expected
    }

    /// `5 clients x 10 messages: 50/50 replies in 0.012 s, 0 errors`.
    pub fn summary(&self, config: &ClientConfig) -> String {
        format!(
            "{} x {}: {}/{} in {:.3} s, {}",
            plural(config.num_clients as u64, "client", "clients"),
            plural(config.messages as u64, "message", "messages"),
            self.replies,
            plural(self.expected as u64, "reply", "replies"),
            self.elapsed.as_secs_f64(),
            plural(self.failures.len() as u64, "error", "errors")
        )
    }

    /// One line per way the connections failed, most common first:
    /// `5 of 5 clients could not connect to 127.0.0.1:8000: connection
    /// refused (is a server running?)`; `the client ...` when there is one.
    pub fn failure_lines(&self, config: &ClientConfig) -> Vec<String> {
        trouble::alike(&self.failures, config.num_clients)
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
    let fail = |trouble: Trouble| {
        if let Ok(mut r) = report.lock() {
            r.failures.push(trouble.say(config));
        }
    };
    thread::scope(|scope| {
        for id in 1..=config.num_clients {
            let (report, fail) = (&report, &fail);
            let spawned = thread::Builder::new().spawn_scoped(scope, move || {
                let outcome = ping_pong(id, config, || {
                    if let Ok(mut r) = report.lock() {
                        r.replies += 1;
                    }
                });
                if let Err(trouble) = outcome {
                    fail(trouble);
                }
            });
            if let Err(e) = spawned {
                fail(Trouble::Thread(e));
            }
        }
    });
    let mut report = report.into_inner().unwrap_or_default();
    report.elapsed = start.elapsed();
    report
}

fn ping_pong(id: usize, config: &ClientConfig, mut on_reply: impl FnMut()) -> Result<(), Trouble> {
    let stream =
        TcpStream::connect_timeout(&config.addr(), config.timeout).map_err(Trouble::Connect)?;
    let mut writer = &stream;
    let mut reader = BufReader::new(&stream);
    let mut line = Vec::new();
    for i in 1..=config.messages {
        writer.write_all(b"ping\n")?;
        read_reply(&mut reader, Instant::now() + config.timeout, &mut line)?;
        if line.is_empty() {
            return Err(Trouble::Closed);
        }
        if line != b"pong\n" {
            return Err(Trouble::Reply(line));
        }
        on_reply();
        if !config.quiet {
            println!("client {id}: pong {i}/{}", config.messages);
        }
    }
    stream.shutdown(Shutdown::Write)?;
    read_reply(&mut reader, Instant::now() + config.timeout, &mut line)?;
    match line.is_empty() {
        true => Ok(()),
        false => Err(Trouble::Reply(line)),
    }
}

/// Read one reply line, newline included, into `line` (left empty at EOF),
/// by `deadline` and within [`REPLY_LIMIT`] bytes. The read timeout is
/// what is left of the deadline before each read, so bytes that keep
/// coming do not keep the reply open (a plain read timeout would restart
/// with each of them).
fn read_reply(
    reader: &mut BufReader<&TcpStream>,
    deadline: Instant,
    line: &mut Vec<u8>,
) -> Result<(), Trouble> {
    line.clear();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Trouble::Unfinished(std::mem::take(line)));
        }
        reader.get_ref().set_read_timeout(Some(left)).map_err(Trouble::Setup)?;
        // One read at a time (`fill_buf`), never `read_until`: that loops
        // inside itself for as long as bytes keep coming, past any deadline.
        let got = match reader.fill_buf() {
            Ok([]) => return Ok(()), // EOF
            Ok(got) => got,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue
            }
            Err(e) => return Err(Trouble::Exchange(e)),
        };
        // Whatever follows the newline is the next reply's, left in the reader.
        let room = &got[..got.len().min(REPLY_LIMIT + 1 - line.len())];
        let end = find_newline(room);
        let taken = end.map_or(room.len(), |at| at + 1);
        line.extend_from_slice(&room[..taken]);
        reader.consume(taken);
        if end.is_some() {
            return Ok(());
        }
        if line.len() > REPLY_LIMIT {
            return Err(Trouble::TooLong(std::mem::take(line)));
        }
    }
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
    /// When the reply owed (or the server's EOF) is `--timeout` late: set
    /// when a ping is queued, not moved by the bytes that arrive, so a
    /// server that trickles a reply cannot hold the connection forever.
    deadline: Instant,
}

/// All connections from one thread with a selector: each sends a ping, waits
/// for its pong, sends the next, `messages` times, then half-closes. A
/// connection that fails is told in the report, the others go on; the error
/// returned is the selector's own.
pub fn run_selector(config: &ClientConfig) -> io::Result<ClientReport> {
    let start = Instant::now();
    let mut report =
        ClientReport { expected: config.num_clients * config.messages, ..ClientReport::default() };
    let mut selector: Selector<Conn> =
        Selector::new().map_err(|e| words::failed("create a selector", e, None))?;
    for id in 1..=config.num_clients {
        let registered = open(id, config).and_then(|conn| {
            let (fd, events) = (conn.stream.as_raw_fd(), interest(&conn));
            selector.register(fd, events, conn).map_err(Trouble::Setup)
        });
        if let Err(trouble) = registered {
            report.failures.push(trouble.say(config));
        }
    }
    // The earliest deadline of any connection, or sooner: deadlines only
    // move later, so looking at them all once per `--timeout` is enough.
    let mut next_check = Instant::now() + config.timeout;
    let mut ready = Vec::new();
    while !selector.is_empty() {
        let now = Instant::now();
        if now >= next_check {
            next_check = expire(&mut selector, now, config, &mut report);
            continue;
        }
        selector
            .select(Some(next_check - now), &mut ready)
            .map_err(|e| words::failed("wait for replies", e, None))?;
        for &(fd, events) in &ready {
            let Some(key) = selector.ready_key_mut(fd) else {
                continue;
            };
            match service(&mut key.data, events, config, &mut report) {
                Ok(Some(interest)) => match selector.modify(fd, interest) {
                    Ok(()) => {}
                    Err(e) => {
                        close(&mut selector, fd, config, Some((Trouble::Setup(e), &mut report)))
                    }
                },
                Ok(None) => close(&mut selector, fd, config, None),
                Err(trouble) => close(&mut selector, fd, config, Some((trouble, &mut report))),
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Connect connection `id`, non-blocking from then on, its first ping queued.
fn open(id: usize, config: &ClientConfig) -> Result<Conn, Trouble> {
    let stream =
        TcpStream::connect_timeout(&config.addr(), config.timeout).map_err(Trouble::Connect)?;
    stream.set_nonblocking(true).map_err(Trouble::Setup)?;
    // The first ping is queued now and goes out when the socket is
    // writable; with nothing to send, say so at once (our FIN).
    let nothing_to_send = config.messages == 0;
    if nothing_to_send {
        stream.shutdown(Shutdown::Write).map_err(Trouble::Setup)?;
    }
    Ok(Conn {
        id,
        stream,
        received: 0,
        outb: if nothing_to_send { Vec::new() } else { b"ping\n".to_vec() },
        inb: Vec::new(),
        bytes_sent: 0,
        bytes_received: 0,
        done_sending: nothing_to_send,
        deadline: Instant::now() + config.timeout,
    })
}

/// Close every connection whose reply is past its deadline;
/// returns the earliest deadline left.
fn expire(
    selector: &mut Selector<Conn>,
    now: Instant,
    config: &ClientConfig,
    report: &mut ClientReport,
) -> Instant {
    let overdue: Vec<RawFd> =
        selector.keys().filter(|key| key.data.deadline <= now).map(|key| key.fd).collect();
    for fd in overdue {
        let partial = selector.get_key_mut(fd).map(|key| std::mem::take(&mut key.data.inb));
        let trouble = Trouble::Unfinished(partial.unwrap_or_default());
        close(selector, fd, config, Some((trouble, report)));
    }
    selector.keys().map(|key| key.data.deadline).min().unwrap_or(now + config.timeout)
}

fn close(
    selector: &mut Selector<Conn>,
    fd: RawFd,
    config: &ClientConfig,
    trouble: Option<(Trouble, &mut ClientReport)>,
) {
    if let Ok(conn) = selector.unregister(fd) {
        if let Some((trouble, report)) = trouble {
            report.failures.push(trouble.say(config));
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
) -> Result<Option<Events>, Trouble> {
    if events.is_writable() && !conn.outb.is_empty() {
        let n = match (&conn.stream).write(&conn.outb) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Trouble::Exchange(e)),
        };
        conn.outb.drain(..n);
        conn.bytes_sent += n;
    }
    if events.is_readable() {
        let mut buf = [0u8; 4096];
        let n = match io::Read::read(&mut &conn.stream, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(interest(conn))),
            Err(e) => return Err(Trouble::Exchange(e)),
        };
        if n == 0 {
            return match (conn.done_sending, conn.inb.is_empty()) {
                (true, true) => Ok(None),
                (_, false) => Err(Trouble::Reply(std::mem::take(&mut conn.inb))),
                (false, true) => Err(Trouble::Closed),
            };
        }
        conn.bytes_received += n;
        conn.inb.extend_from_slice(&buf[..n]);
        while let Some(end) = find_newline(&conn.inb) {
            let line: Vec<u8> = conn.inb.drain(..=end).collect();
            if line != b"pong\n" || conn.done_sending {
                return Err(Trouble::Reply(line));
            }
            conn.received += 1;
            report.replies += 1;
            if !config.quiet {
                println!("connection {}: pong {}/{}", conn.id, conn.received, config.messages);
            }
            if conn.received < config.messages {
                conn.outb.extend_from_slice(b"ping\n");
            } else {
                conn.stream.shutdown(Shutdown::Write).map_err(Trouble::Exchange)?;
                conn.done_sending = true;
            }
            conn.deadline = Instant::now() + config.timeout;
        }
        if conn.inb.len() > REPLY_LIMIT {
            return Err(Trouble::TooLong(std::mem::take(&mut conn.inb)));
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
