//! `pingpong-stall`: the stall of `make demo-stall` as a picture.
//!
//! Two steps, which `scripts/demo-stall.sh` runs for each server mode and
//! then once at the end:
//!
//! ```text
//! pingpong-stall measure --port 40123 --mode epoll --clients 5 --messages 2 --out timings.tsv
//! pingpong-stall draw timings.tsv --clients 5 --messages 2 --work-ms 200 --out timeline.svg
//! ```
//!
//! - `measure` is the course's client with a stopwatch: N threads, each
//!   connects, waits until all are connected, then sends `ping` and reads
//!   `pong` M times. It appends one line per reply to a TSV file (mode,
//!   client, reply number, seconds since the clients started; client 1 is
//!   the one whose first reply came first) and prints the same summary line
//!   as `pingpong client`.
//! - `draw` turns those lines into an SVG timeline: one panel per mode, one
//!   row per client, one mark per reply at the time it arrived. On the
//!   selector server the rows form a staircase (one client served at a time);
//!   with threads every client gets its reply at once.
//!
//! The SVG is written by hand, not with plotters: each mode is a
//! `<g class="mode">`, each client a `<g class="client">`, each reply a
//! `<circle class="reply">`, so a test (or a student with `grep -c`) can count
//! them.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pingpong-stall",
    version,
    about = "Measure and draw the stall of make demo-stall"
)]
struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// N clients x M pings against a running server; one TSV line per reply.
    Measure {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long)]
        port: u16,
        /// The server's mode, written in the first column (a label only).
        #[arg(long)]
        mode: String,
        #[arg(long, default_value_t = 5)]
        clients: usize,
        #[arg(long, default_value_t = 2)]
        messages: usize,
        /// The TSV file the replies are appended to.
        #[arg(long)]
        out: PathBuf,
        /// Seconds to wait for one reply before giving up on that client.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// The SVG timeline of a TSV file written by `measure`.
    Draw {
        /// The TSV file written by `measure`.
        timings: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Clients per mode (a client without replies still gets its row).
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        messages: usize,
        /// The server's --work-ms, for the title and the grid.
        #[arg(long)]
        work_ms: u64,
        /// MODE=N: the server's thread count during the run (repeatable).
        #[arg(long = "threads", value_name = "MODE=N")]
        threads: Vec<String>,
        /// The command that made the measurement, for the caption.
        #[arg(long, default_value = "make demo-stall")]
        command: String,
    },
}

fn main() -> ExitCode {
    let outcome = match Args::parse().step {
        Step::Measure { host, port, mode, clients, messages, out, timeout } => {
            measure(&host, port, clients, messages, Duration::from_secs(timeout)).and_then(|run| {
                append_tsv(&out, &mode, &run)?;
                println!("{}", run.summary(clients, messages));
                Ok(if run.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            })
        }
        Step::Draw { timings, out, clients, messages, work_ms, threads, command } => {
            let figure = Figure {
                clients,
                messages,
                work_ms,
                threads: threads
                    .iter()
                    .filter_map(|t| t.split_once('='))
                    .map(|(m, n)| (m.to_string(), n.to_string()))
                    .collect(),
                command,
            };
            fs::read_to_string(&timings)
                .and_then(|text| parse_tsv(&text))
                .and_then(|panels| fs::write(&out, figure.svg(&panels)))
                .map(|()| ExitCode::SUCCESS)
        }
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("pingpong-stall: {e}");
        ExitCode::FAILURE
    })
}

// ------------------------------------------------------------------ measure

/// One reply: which client, which of its pings, when (seconds since start).
#[derive(Clone, Debug, PartialEq)]
struct Reply {
    client: usize,
    n: usize,
    secs: f64,
}

/// What one `measure` saw.
#[derive(Debug, Default)]
struct Run {
    replies: Vec<Reply>,
    errors: Vec<String>,
}

impl Run {
    /// `5 clients x 2 messages: 10/10 replies in 2.004 s, 0 errors`, as
    /// `pingpong client` says it; the time is the last reply's.
    fn summary(&self, clients: usize, messages: usize) -> String {
        let last = self.replies.iter().map(|r| r.secs).fold(0.0, f64::max);
        format!(
            "{clients} clients x {messages} messages: {}/{} replies in {last:.3} s, {} errors",
            self.replies.len(),
            clients * messages,
            self.errors.len()
        )
    }
}

/// N clients at once, each `messages` round trips, like `pingpong client`;
/// time 0 is when the last of them has connected and all may send. Client 1
/// is the one answered first.
fn measure(
    host: &str,
    port: u16,
    clients: usize,
    messages: usize,
    timeout: Duration,
) -> io::Result<Run> {
    let all_connected = Barrier::new(clients);
    let outcomes: Vec<(Instant, io::Result<Vec<Instant>>)> = thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let all_connected = &all_connected;
                scope.spawn(move || {
                    let stream = TcpStream::connect((host, port));
                    all_connected.wait(); // even a client that failed: nobody waits forever
                    let go = Instant::now();
                    (go, stream.and_then(|s| ping_pong(&s, messages, timeout)))
                })
            })
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    let start = outcomes.iter().map(|(go, _)| *go).min().unwrap_or_else(Instant::now);
    // Clients are numbered in the order the server first answered them, so
    // a server that serves one at a time draws a staircase, top to bottom.
    let mut outcomes: Vec<_> = outcomes.into_iter().map(|(_, outcome)| outcome).collect();
    outcomes.sort_by_key(|outcome| match outcome {
        Ok(arrivals) => (arrivals.is_empty(), arrivals.first().copied()),
        Err(_) => (true, None),
    });
    let mut run = Run::default();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let client = i + 1;
        match outcome {
            Ok(arrivals) => run.replies.extend(arrivals.iter().enumerate().map(|(n, t)| Reply {
                client,
                n: n + 1,
                secs: t.duration_since(start).as_secs_f64(),
            })),
            Err(e) => run.errors.push(format!("client {client}: {e}")),
        }
    }
    Ok(run)
}

/// `messages` times: send `ping`, read `pong`, note the time it arrived;
/// then half-close and expect the server's EOF.
fn ping_pong(stream: &TcpStream, messages: usize, timeout: Duration) -> io::Result<Vec<Instant>> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut writer = stream;
    let mut reader = BufReader::new(stream);
    let mut arrivals = Vec::with_capacity(messages);
    let mut line = String::new();
    for _ in 0..messages {
        writer.write_all(b"ping\n")?;
        line.clear();
        reader.read_line(&mut line)?;
        let arrived = Instant::now();
        if line != "pong\n" {
            let what = format!("expected \"pong\\n\", got {line:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, what));
        }
        arrivals.push(arrived);
    }
    stream.shutdown(Shutdown::Write)?;
    line.clear();
    reader.read_line(&mut line)?;
    Ok(arrivals)
}

const TSV_HEADER: &str = "mode\tclient\treply\tseconds";

/// Append the run's replies to `path` (the header first if it is new).
fn append_tsv(path: &PathBuf, mode: &str, run: &Run) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut text = String::new();
    if file.metadata()?.len() == 0 {
        text.push_str(TSV_HEADER);
        text.push('\n');
    }
    for r in &run.replies {
        let _ = writeln!(text, "{mode}\t{}\t{}\t{:.6}", r.client, r.n, r.secs);
    }
    file.write_all(text.as_bytes())
}

/// The replies of each mode, modes in the order they first appear.
fn parse_tsv(text: &str) -> io::Result<Vec<(String, Vec<Reply>)>> {
    let mut panels: Vec<(String, Vec<Reply>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line == TSV_HEADER || line.trim().is_empty() {
            continue;
        }
        let bad =
            || io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {line:?}", i + 1));
        let fields: Vec<&str> = line.split('\t').collect();
        let [mode, client, n, secs] = fields[..] else { return Err(bad()) };
        let reply = Reply {
            client: client.parse().map_err(|_| bad())?,
            n: n.parse().map_err(|_| bad())?,
            secs: secs.parse().map_err(|_| bad())?,
        };
        match panels.iter_mut().find(|(m, _)| m == mode) {
            Some((_, replies)) => replies.push(reply),
            None => panels.push((mode.to_string(), vec![reply])),
        }
    }
    Ok(panels)
}

// ------------------------------------------------------------------ draw

/// What the picture says besides the replies.
struct Figure {
    clients: usize,
    messages: usize,
    work_ms: u64,
    /// The server's threads during the run, by mode.
    threads: BTreeMap<String, String>,
    command: String,
}

const WIDTH: f64 = 960.0;
const LEFT: f64 = 190.0; // mode and client labels
const RIGHT: f64 = 170.0; // each row's last reply
const ROW: f64 = 18.0;
const PANEL_HEAD: f64 = 24.0;
const PANEL_GAP: f64 = 16.0;
const TOP: f64 = 92.0;
const FONT: &str = "font-family=\"sans-serif\"";

fn color(mode: &str) -> &'static str {
    match mode {
        "epoll" | "kqueue" | "poll" | "select" => "#d62728",
        "threads" => "#1f77b4",
        "pool" => "#2ca02c",
        "hybrid" => "#9467bd",
        _ => "#7f7f7f",
    }
}

/// Who runs the handler, in a few words.
fn design(mode: &str) -> &'static str {
    match mode {
        "epoll" | "kqueue" | "poll" | "select" => "one thread runs the loop and the handler",
        "threads" => "a thread per client",
        "pool" => "a fixed pool of threads, one per connection",
        "hybrid" => "event loop for the I/O, a pool of threads for the handler",
        "blocking" => "one client at a time",
        _ => "",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The grid step in seconds: one handler's time while that leaves at most
/// 12 lines, else 1, 2 or 5 times a power of ten.
fn grid_step(span: f64, work: f64) -> f64 {
    if work > 0.0 && span / work <= 12.0 {
        return work;
    }
    let mut step = 10f64.powf((span / 10.0).log10().floor());
    for k in [1.0, 2.0, 5.0, 10.0] {
        if span / (step * k) <= 10.0 {
            step *= k;
            break;
        }
    }
    step
}

/// Seconds as a label: `0`, `0.2`, `1.4`, `12`.
fn secs_label(s: f64) -> String {
    let text = format!("{s:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Figure {
    /// The whole SVG: title, one panel per mode, the time axis, the caption.
    fn svg(&self, panels: &[(String, Vec<Reply>)]) -> String {
        let work = self.work_ms as f64 / 1000.0;
        let latest = panels.iter().flat_map(|(_, r)| r).map(|r| r.secs).fold(0.0, f64::max);
        let span0 = latest.max(work).max(0.001);
        let step = grid_step(span0, work);
        let span = (span0 / step - 1e-9).ceil().max(1.0) * step;
        let plot = WIDTH - LEFT - RIGHT;
        let x = |s: f64| LEFT + s / span * plot;
        let panel_height = PANEL_HEAD + self.clients as f64 * ROW;
        let plot_bottom = TOP + panels.len() as f64 * (panel_height + PANEL_GAP) - PANEL_GAP;
        let height = plot_bottom + 108.0;

        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" {FONT} font-size=\"12\">"
        );
        let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"28\" font-size=\"18\" font-weight=\"bold\">The stall: a {} ms \
             handler, {} clients × {} pings each, all at once</text>",
            self.work_ms, self.clients, self.messages
        );
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"50\" font-size=\"13\">One row per client, numbered in the order \
             of their first reply; one mark per reply, at the moment it arrived.</text>"
        );
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"68\" font-size=\"13\">A staircase: the server answers one \
             client at a time. A column: it answers every client at once.</text>"
        );

        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"#444444\">last reply</text>",
            WIDTH - RIGHT + 12.0,
            TOP - 4.0
        );
        // The grid: one line per step, through every panel.
        let mut t = 0.0;
        while t <= span + 1e-9 {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{plot_bottom}\" \
                 stroke=\"#dddddd\"/>",
                x(t)
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(t),
                plot_bottom + 16.0,
                secs_label(t)
            );
            t += step;
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">time since the \
             clients started sending, in seconds (grid: every {})</text>",
            LEFT + plot / 2.0,
            plot_bottom + 36.0,
            if step < 1.0 {
                format!("{} ms", secs_label(step * 1000.0))
            } else {
                format!("{} s", secs_label(step))
            }
        );

        for (i, (mode, replies)) in panels.iter().enumerate() {
            let top = TOP + i as f64 * (panel_height + PANEL_GAP);
            self.panel(&mut s, mode, replies, top, &x);
        }

        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let caption = [
            format!(
                "Measured by `{}` (scripts/demo-stall.sh) on {cpus} CPUs: for each mode, \
                 `pingpong serve --mode MODE --work-ms {}`,",
                self.command, self.work_ms
            ),
            format!(
                "then {} clients connect, and each sends {} pings, one after the other \
                 (the next when its pong has come). The faint bar: until its last reply.",
                self.clients, self.messages
            ),
            "The selector's one thread runs the handler itself, so while it computes one \
             reply nobody else is answered; a thread in the handler holds up only its client."
                .to_string(),
        ];
        for (i, line) in caption.iter().enumerate() {
            let _ = writeln!(
                s,
                "<text x=\"20\" y=\"{}\" fill=\"#444444\">{}</text>",
                plot_bottom + 62.0 + 17.0 * i as f64,
                escape(line)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// One mode: its name on the left, a row per client, a mark per reply,
    /// and on the right the client's last reply.
    fn panel(
        &self,
        s: &mut String,
        mode: &str,
        replies: &[Reply],
        top: f64,
        x: &impl Fn(f64) -> f64,
    ) {
        let color = color(mode);
        let last = replies.iter().map(|r| r.secs).fold(0.0, f64::max);
        let threads = match self.threads.get(mode) {
            Some(n) => format!(", server threads: {n}"),
            None => String::new(),
        };
        let _ = writeln!(s, "<g class=\"mode\" data-mode=\"{}\">", escape(mode));
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"{}\" font-size=\"14\" font-weight=\"bold\" fill=\"{color}\">{}\
             </text><text x=\"{LEFT}\" y=\"{}\" fill=\"#444444\">{}: last reply at {last:.3} s{}\
             </text>",
            top + 16.0,
            escape(mode),
            top + 16.0,
            design(mode),
            threads
        );
        for client in 1..=self.clients {
            let y = top + PANEL_HEAD + (client - 1) as f64 * ROW + ROW / 2.0;
            let mine: Vec<&Reply> = replies.iter().filter(|r| r.client == client).collect();
            let done = mine.iter().map(|r| r.secs).fold(0.0, f64::max);
            let _ = writeln!(s, "<g class=\"client\" data-client=\"{client}\">");
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">client {client}</text>",
                LEFT - 8.0,
                y + 4.0
            );
            // The client's wait, from the start to its last reply.
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" \
                 stroke-opacity=\"0.25\" stroke-width=\"6\"/>",
                x(0.0),
                x(done)
            );
            for r in &mine {
                let _ = writeln!(
                    s,
                    "<circle class=\"reply\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"6\" fill=\"{color}\">\
                     <title>client {client}, reply {} at {:.3} s</title></circle>",
                    x(r.secs),
                    r.n,
                    r.secs
                );
            }
            let end = if mine.len() == self.messages {
                format!("{done:.3} s")
            } else {
                format!("{}/{} replies", mine.len(), self.messages)
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{:.1}\" fill=\"#444444\">{end}</text>",
                WIDTH - RIGHT + 12.0,
                y + 4.0
            );
            s.push_str("</g>\n");
        }
        s.push_str("</g>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(clients: usize, messages: usize, work_ms: u64) -> Figure {
        Figure {
            clients,
            messages,
            work_ms,
            threads: BTreeMap::new(),
            command: "make demo-stall".into(),
        }
    }

    /// Each mode's `<g class="mode">` block, split at the next one.
    fn blocks(svg: &str) -> Vec<&str> {
        svg.split("<g class=\"mode\"").skip(1).collect()
    }

    /// (rows, marks) of each mode's panel.
    fn rows_and_marks(svg: &str) -> Vec<(usize, usize)> {
        blocks(svg)
            .iter()
            .map(|b| {
                (b.matches("<g class=\"client\"").count(), b.matches("class=\"reply\"").count())
            })
            .collect()
    }

    /// The staircase of the selector and the column of threads, as the demo
    /// measures them: client c's k-th reply after (k-1)·N + c handler times.
    fn synthetic(clients: usize, messages: usize, work: f64) -> String {
        let mut tsv = format!("{TSV_HEADER}\n");
        for c in 1..=clients {
            for k in 1..=messages {
                let stair = ((k - 1) * clients + c) as f64 * work;
                tsv += &format!("epoll\t{c}\t{k}\t{stair:.6}\n");
            }
        }
        for mode in ["threads", "pool", "hybrid"] {
            for c in 1..=clients {
                for k in 1..=messages {
                    tsv += &format!("{mode}\t{c}\t{k}\t{:.6}\n", k as f64 * work);
                }
            }
        }
        tsv
    }

    #[test]
    fn the_timeline_has_a_row_per_client_and_a_mark_per_reply() {
        for (clients, messages) in [(5, 2), (20, 2), (3, 10)] {
            let panels = parse_tsv(&synthetic(clients, messages, 0.2)).unwrap();
            let modes: Vec<&str> = panels.iter().map(|(m, _)| m.as_str()).collect();
            assert_eq!(modes, ["epoll", "threads", "pool", "hybrid"]);
            let svg = figure(clients, messages, 200).svg(&panels);
            assert_eq!(rows_and_marks(&svg), vec![(clients, clients * messages); 4]);
            for block in blocks(&svg) {
                for client in block.split("<g class=\"client\"").skip(1) {
                    assert_eq!(client.matches("class=\"reply\"").count(), messages);
                }
            }
        }
    }

    #[test]
    fn a_client_without_replies_keeps_its_row() {
        let tsv = format!("{TSV_HEADER}\nepoll\t1\t1\t0.2\nepoll\t1\t2\t0.4\nepoll\t3\t1\t0.6\n");
        let svg = figure(3, 2, 200).svg(&parse_tsv(&tsv).unwrap());
        assert_eq!(rows_and_marks(&svg), [(3, 3)]);
        assert!(svg.contains("0/2 replies") && svg.contains("1/2 replies"), "{svg}");
    }

    #[test]
    fn the_axis_is_labelled_in_seconds_and_the_caption_names_the_command() {
        let svg = figure(5, 2, 200).svg(&parse_tsv(&synthetic(5, 2, 0.2)).unwrap());
        assert!(svg.contains("in seconds (grid: every 200 ms)"), "{svg}");
        for tick in [">0<", ">0.2<", ">1<", ">2<"] {
            assert!(svg.contains(tick), "no tick {tick}");
        }
        assert!(svg.contains("Measured by `make demo-stall`"));
        let slow = figure(20, 2, 200).svg(&parse_tsv(&synthetic(20, 2, 0.2)).unwrap());
        assert!(slow.contains("(grid: every 1 s)"), "{slow}");
        assert!(!svg.contains(">2.2<"), "the axis ends at the last reply's step");
    }

    #[test]
    fn the_grid_step_is_the_handler_time_or_a_round_number() {
        assert_eq!(grid_step(2.0, 0.2), 0.2);
        assert_eq!(grid_step(8.0, 0.2), 1.0);
        assert_eq!(grid_step(0.05, 0.0), 0.005);
        assert_eq!(secs_label(0.4), "0.4");
        assert_eq!(secs_label(2.0), "2");
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_tsv("epoll\t1\tone\t0.2\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    /// A real run, small: the selector server with a 20 ms handler, 3 clients
    /// x 2 pings, measured and drawn. Its replies come one at a time.
    #[test]
    fn a_real_selector_run_draws_a_staircase() {
        use pingpong::server::{self, Config, Mode};
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config = Config { port, work: Duration::from_millis(20), ..Config::default() };
        // The server thread is left running: the test process ends it.
        thread::spawn(move || server::serve(Mode::default(), &config));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            thread::sleep(Duration::from_millis(10));
        }

        let run = measure("127.0.0.1", port, 3, 2, Duration::from_secs(10)).unwrap();
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert_eq!(run.replies.len(), 6);
        let mut times: Vec<f64> = run.replies.iter().map(|r| r.secs).collect();
        times.sort_by(f64::total_cmp);
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] > 0.015, "two replies within one handler time: {times:?}");
        }

        let path = std::env::temp_dir().join(format!("pingpong-stall-{}.tsv", std::process::id()));
        let _ = fs::remove_file(&path);
        append_tsv(&path, "epoll", &run).unwrap();
        let panels = parse_tsv(&fs::read_to_string(&path).unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        let svg = figure(3, 2, 20).svg(&panels);
        assert_eq!(rows_and_marks(&svg), [(3, 6)]);
        assert!(run.summary(3, 2).starts_with("3 clients x 2 messages: 6/6 replies in 0."));
    }
}
