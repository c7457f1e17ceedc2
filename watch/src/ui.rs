//! The live view: the same tables as `--once`, redrawn each interval, sized
//! to the terminal. `q`, Esc or Ctrl-C quits.
//!
//! [`draw`] only paints a [`Snapshot`] into a frame, so the tests paint
//! recorded snapshots into ratatui's `TestBackend` and compare the screens
//! with the ones kept beside them.

use std::io;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::model::{self, Snapshot};
use crate::raw::Source;
use crate::text;

/// Paint `snapshot` over the whole frame. `status` is the bottom line's
/// right part (the refresh, or why reading stopped).
pub fn draw(frame: &mut Frame, snapshot: &Snapshot, status: &str) {
    let area = frame.area();
    let mut header = text::process_lines(snapshot);
    if snapshot.syscalls_hidden.is_some() {
        header.push(
            "system calls hidden: no ptrace rights; run `pingpong watch -- CMD`, or sudo".into(),
        );
    }
    let threads = text::threads(snapshot);
    let sockets = text::sockets(snapshot);
    let sets = text::epoll_sets(snapshot);
    let rings = text::rings(snapshot);
    let problems = text::problem_lines(snapshot);

    // Fixed parts first (header, problems, the key line); the tables share
    // what is left, each in proportion to its rows.
    let wrapped: usize = problems
        .iter()
        .map(|line| line.chars().count().div_ceil(area.width.max(1) as usize).max(1))
        .sum();
    let problem_rows = (wrapped.max(1) as u16 + 1).min(area.height / 3).max(2);
    let weight = |rows: usize| rows as u16 + 2;
    let mut constraints = vec![Constraint::Length(header.len() as u16)];
    constraints.push(Constraint::Fill(weight(threads.rows.len())));
    constraints.push(Constraint::Fill(weight(sockets.rows.len())));
    if !sets.rows.is_empty() {
        constraints.push(Constraint::Fill(weight(sets.rows.len())));
    }
    if !rings.rows.is_empty() {
        constraints.push(Constraint::Length(rings.rows.len() as u16 + 2));
    }
    constraints.push(Constraint::Length(problem_rows));
    constraints.push(Constraint::Length(1));
    let areas = Layout::vertical(constraints).split(area);
    let mut next = areas.iter().copied();
    let mut take = || next.next().unwrap_or_default();

    let header_area = take();
    let header: Vec<Line> = header
        .into_iter()
        .enumerate()
        .map(|(i, line)| if i == 0 { Line::from(line).bold() } else { Line::from(line) })
        .collect();
    frame.render_widget(Paragraph::new(header), header_area);
    draw_table(frame, take(), &threads);
    draw_table(frame, take(), &sockets);
    if !sets.rows.is_empty() {
        draw_table(frame, take(), &sets);
    }
    if !rings.rows.is_empty() {
        draw_table(frame, take(), &rings);
    }
    let problems_area = take();
    let title = format!("what looks wrong ({})", problems.len());
    let lines: Vec<Line> = if problems.is_empty() {
        vec![Line::from("nothing".fg(Color::Green))]
    } else {
        snapshot
            .problems
            .iter()
            .zip(&problems)
            .map(|(p, line)| {
                let rest = line.strip_prefix(p.id).unwrap_or(line);
                Line::from(vec![
                    Span::from(p.id).fg(Color::Red).bold(),
                    Span::from(rest.to_string()),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(section(&title)),
        problems_area,
    );
    let keys = Line::from(vec![
        Span::from(" q").bold(),
        Span::from(format!(" quit   {status}   {}", text::IO_NOTE_SHORT)),
    ]);
    frame.render_widget(
        Paragraph::new(keys).style(Style::new().add_modifier(Modifier::DIM)),
        take(),
    );
}

/// A section: its title on a rule across the top, no side borders (they
/// would cost two columns at 80).
fn section(title: &str) -> Block<'_> {
    Block::new().borders(Borders::TOP).title(Span::from(format!(" {title} ")).bold())
}

fn draw_table(frame: &mut Frame, area: Rect, table: &text::Table) {
    let mut widths: Vec<u16> = table.heads.iter().map(|h| h.len() as u16).collect();
    for row in &table.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() as u16);
        }
    }
    // Every column as wide as its widest cell, but the last, which takes
    // what is left (and is cut at the edge).
    let last = widths.len().saturating_sub(1);
    let constraints: Vec<Constraint> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| if i == last { Constraint::Fill(1) } else { Constraint::Length(*w) })
        .collect();
    let shown = area.height.saturating_sub(2) as usize;
    let hidden = table.rows.len().saturating_sub(shown);
    let title = if hidden > 0 {
        format!("{} ({hidden} more below)", table.title)
    } else {
        table.title.clone()
    };
    let rows = table.rows.iter().map(|row| {
        let stale = row.iter().any(|cell| cell.starts_with("STALE"));
        let style = if stale { Style::new().fg(Color::Red) } else { Style::new() };
        Row::new(row.clone()).style(style)
    });
    let widget = Table::new(rows, constraints)
        .header(Row::new(table.heads.clone()).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .block(section(&title));
    frame.render_widget(widget, area);
}

/// Read `source` every `interval` and redraw, until `q`, Esc or Ctrl-C, or
/// until the process ends (then its last snapshot stays up, with why).
pub fn run(source: &mut dyn Source, interval: Duration) -> io::Result<()> {
    let mut before = source.read()?;
    let mut terminal = ratatui::init();
    let result = (|| -> io::Result<()> {
        let mut shown: Option<Snapshot> = None;
        let mut status = format!("refresh {} ms", interval.as_millis());
        let mut next = Instant::now() + interval;
        loop {
            if let Some(snapshot) = &shown {
                terminal.draw(|frame| draw(frame, snapshot, &status))?;
            } else {
                terminal.draw(|frame| {
                    let waiting = format!("reading pid {} ...", before.pid);
                    frame.render_widget(Paragraph::new(waiting), frame.area());
                })?;
            }
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    if key.kind == KeyEventKind::Press
                        && (ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc))
                    {
                        return Ok(());
                    }
                }
                continue; // a resize or another key: redraw now
            }
            next = Instant::now() + interval;
            match source.read() {
                Ok(now) => {
                    shown = Some(model::snapshot(&before, &now));
                    before = now;
                }
                Err(e) => status = format!("stopped reading: {e} (q to quit)"),
            }
        }
    })();
    ratatui::restore();
    result
}
