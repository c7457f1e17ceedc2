//! The report's charts, drawn as SVG with `plotters` (its SVG backend only:
//! text stays `<text>` for the browser to render, so no font library is
//! needed to build or run this).
//!
//! One chart, one question; the file names are the ones `docs/` keeps:
//!
//! - `bench-throughput.svg`: round trips/s against connections (ping sweep);
//! - `bench-cpu.svg`: server CPU time per round trip at the base load;
//! - `bench-latency.svg`: latency by percentile at the base load;
//! - `bench-memory.svg`: resident memory per idle connection (hold test).
//!
//! Every picture has its legend beside the plot, never over it, and a
//! footer with what was left out and why, and the command that made it.

use std::error::Error;
use std::io;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::figures::{duration_ns, rate, Fig, Row};
use crate::workloads::{bytes, Family, BASE_CLIENTS};

type Result<T> = std::result::Result<T, Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const SIZE: (u32, u32) = (900, 540);
const FONT: &str = "sans-serif";
/// Width of the legend column right of a line chart.
const LEGEND_WIDTH: u32 = 170;
/// Characters per footer line (12 px text, 900 px wide).
const FOOTER_CHARS: usize = 150;

/// A chart written to disk: its file (beside report.md), its title, and
/// a caption for the report: what it shows and what it leaves out.
#[derive(Clone, Debug)]
pub struct Chart {
    pub file: &'static str,
    pub title: String,
    pub caption: String,
}

/// Draw every chart the rows have data for into `dir`, each with
/// `command` (the command line that made the figures) in its footer.
pub fn draw_all(dir: &Path, rows: &[Row], command: &str) -> io::Result<Vec<Chart>> {
    let palette = Colors::new(rows);
    let base = base_rows(rows);
    let drawn = [
        ("bench-throughput.svg", throughput(rows)),
        ("bench-cpu.svg", cpu(&base)),
        ("bench-latency.svg", latency(&base)),
        ("bench-memory.svg", memory(rows)),
    ];
    let mut written = Vec::new();
    for (file, plan) in drawn {
        let Some(plan) = plan else { continue };
        let mut footer: Vec<String> = plan.notes.iter().flat_map(|n| wrap(n)).collect();
        footer.extend(wrap(&format!("made by: {command}")));
        plan.draw(&dir.join(file), &footer, &palette)
            .map_err(|e| io::Error::other(format!("{file}: {e}")))?;
        let mut caption = plan.shows.clone();
        for note in &plan.notes {
            caption.push(' ');
            caption += note;
        }
        written.push(Chart { file, title: plan.title.clone(), caption });
    }
    Ok(written)
}

/// What one chart will draw, decided from the rows before any drawing.
struct Plan {
    title: String,
    /// One sentence: what the chart shows.
    shows: String,
    /// What it leaves out or marks, and why.
    notes: Vec<String>,
    body: Body,
}

enum Body {
    /// One line per server: x, y points; `log_x` for connection counts,
    /// otherwise a percentile axis (x = number of nines) on log latency.
    Lines { series: Vec<(String, Vec<(f64, f64)>)>, x_desc: String, y_desc: String, sweep: bool },
    /// One horizontal bar per server; `log` for values that span orders
    /// of magnitude; `bytes` for values in bytes (KiB axis), else ns.
    Bars { items: Vec<(String, f64)>, x_desc: String, log: bool, bytes: bool },
}

/// The chart of the ping sweep: round trips/s against connections, one line
/// per server (variants left out). A run that starved some connections
/// measured fewer clients than the axis says: its point is left out.
fn throughput(rows: &[Row]) -> Option<Plan> {
    let sweep: Vec<&Row> = rows
        .iter()
        .filter(|r| r.run.workload.family == Family::Ping && !r.run.target.is_variant())
        .filter(|r| r.reason().is_none())
        .collect();
    let mut series = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for name in servers(sweep.iter().copied()) {
        let mine: Vec<&&Row> = sweep.iter().filter(|r| r.run.target.to_string() == name).collect();
        let starving: Vec<String> = mine
            .iter()
            .filter(|r| starved(r) > 0.0)
            .map(|r| r.run.workload.clients.to_string())
            .collect();
        if !starving.is_empty() {
            left_out.push(format!("{name} at {}", starving.join(", ")));
        }
        let pts: Vec<(f64, f64)> = mine
            .iter()
            .filter(|r| starved(r) == 0.0)
            .filter_map(|r| Some((r.run.workload.clients as f64, r.median(Fig::Rps)?)))
            .collect();
        if !pts.is_empty() {
            series.push((name, pts));
        }
    }
    if series.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    if !left_out.is_empty() {
        notes.push(format!(
            "Left out, because some connections got no reply in the whole window (starved), so \
             fewer clients were served than the axis says: {} connections.",
            left_out.join("; ")
        ));
    }
    Some(Plan {
        title: "Round trips per second against connections".into(),
        shows: "Round trips per second (median) of the ping load, one request in flight per \
                connection, for each connection count; one line per server."
            .into(),
        notes,
        body: Body::Lines {
            series,
            x_desc: "connections (log scale), each one ping in flight".into(),
            y_desc: "round trips / s".into(),
            sweep: true,
        },
    })
}

/// The servers of the base load that starved connections, as a note.
fn starved_note(rows: &[&Row], what: &str) -> Option<String> {
    let starving: Vec<String> = rows
        .iter()
        .filter(|r| starved(r) > 0.0)
        .map(|r| {
            let n = r.run.workload.clients;
            format!("{} ({:.0} of {n} connections starved)", r.run.target, starved(r))
        })
        .collect();
    (!starving.is_empty()).then(|| format!("{}: {what}", starving.join(", ")))
}

/// Server CPU time per round trip at the base load, every server on it
/// (variants included).
fn cpu(base: &[&Row]) -> Option<Plan> {
    let label = base.first()?.run.workload.label();
    let items: Vec<(String, f64)> = base
        .iter()
        .filter_map(|r| Some((r.run.target.to_string(), r.median(Fig::CpuPerRt)?)))
        .collect();
    if items.is_empty() {
        return None;
    }
    let notes = starved_note(
        base,
        "its CPU time is divided by the round trips of the connections it did serve.",
    );
    Some(Plan {
        title: format!("Server CPU time per round trip ({label})"),
        shows: format!(
            "The server's CPU time (user + system, every thread) over the measured window, \
             divided by its round trips, under {label}; one bar per server, variants included."
        ),
        notes: notes.into_iter().collect(),
        body: Body::Bars {
            items,
            x_desc: "server CPU time per round trip".into(),
            log: false,
            bytes: false,
        },
    })
}

/// Latency by percentile at the base load, one line per server. A server
/// that starved connections is left out: its percentiles cover only the
/// connections it served, and would make it look fastest.
fn latency(base: &[&Row]) -> Option<Plan> {
    let label = base.first()?.run.workload.label();
    // x is the number of nines: 1 = 90 %, 2 = 99 %, 3 = 99.9 %.
    let nines = |q: f64| -(1.0 - q).log10();
    let plain: Vec<&Row> = base.iter().copied().filter(|r| !r.run.target.is_variant()).collect();
    let series: Vec<(String, Vec<(f64, f64)>)> = plain
        .iter()
        .filter(|r| starved(r) == 0.0)
        .filter_map(|r| {
            let pts: Vec<(f64, f64)> =
                r.quantiles().into_iter().map(|(q, ns)| (nines(q), ns.max(1.0))).collect();
            (!pts.is_empty()).then(|| (r.run.target.to_string(), pts))
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let notes = starved_note(
        &plain,
        "left out, its percentiles would cover only the connections it served.",
    );
    Some(Plan {
        title: format!("Latency by percentile ({label})"),
        shows: format!(
            "Latency of each request, queued to whole reply, by percentile (median over the \
             repeats), under {label}; one line per server."
        ),
        notes: notes.into_iter().collect(),
        body: Body::Lines {
            series,
            x_desc: "percentile".into(),
            y_desc: "latency (log scale)".into(),
            sweep: false,
        },
    })
}

/// Resident memory per idle connection, the hold test.
fn memory(rows: &[Row]) -> Option<Plan> {
    let hold: Vec<&Row> = rows.iter().filter(|r| r.run.workload.family == Family::Hold).collect();
    let label = hold.first()?.run.workload.label();
    let items: Vec<(String, f64)> = hold
        .iter()
        .filter_map(|r| Some((r.run.target.to_string(), r.median(Fig::RssPerConn)?)))
        .collect();
    if items.is_empty() {
        return None;
    }
    let absent: Vec<String> =
        hold.iter().filter_map(|r| Some(format!("{} ({})", r.run.target, r.reason()?))).collect();
    let mut notes = Vec::new();
    if !absent.is_empty() {
        notes.push(format!("Not measured: {}.", absent.join(", ")));
    }
    Some(Plan {
        title: format!("Server memory per idle connection ({label})"),
        shows: format!(
            "(RSS after opening the idle connections − RSS before) / idle connections, under \
             {label}; one bar per server, log scale."
        ),
        notes,
        body: Body::Bars {
            items,
            x_desc: "resident memory per idle connection (log scale)".into(),
            log: true,
            bytes: true,
        },
    })
}

fn starved(row: &Row) -> f64 {
    row.median(Fig::Starved).unwrap_or(0.0)
}

/// `text` cut into footer lines at spaces.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > FOOTER_CHARS {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// One colour per server, the same in every chart.
struct Colors(Vec<String>);

impl Colors {
    fn new(rows: &[Row]) -> Colors {
        let mut names: Vec<String> = Vec::new();
        for row in rows {
            let name = row.run.target.to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Colors(names)
    }

    fn of(&self, name: &str) -> RGBAColor {
        let i = self.0.iter().position(|n| n == name).unwrap_or(self.0.len());
        Palette99::pick(i).to_rgba()
    }
}

/// The ping load nearest 100 connections, every server on it (variants
/// included): the load the comparisons are made at.
fn base_rows(rows: &[Row]) -> Vec<&Row> {
    let nearest = rows
        .iter()
        .filter(|r| r.run.workload.family == Family::Ping)
        .map(|r| r.run.workload.clients)
        .min_by_key(|c| c.abs_diff(BASE_CLIENTS));
    rows.iter()
        .filter(|r| r.run.workload.family == Family::Ping)
        .filter(|r| Some(r.run.workload.clients) == nearest)
        .filter(|r| r.reason().is_none())
        .collect()
}

/// The servers of the plain rows (no variants), in the order first seen.
fn servers<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for row in rows.filter(|r| !r.run.target.is_variant()) {
        let name = row.run.target.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

impl Plan {
    fn draw(&self, path: &Path, footer: &[String], palette: &Colors) -> Result<()> {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 22))?;
        let footer_height = 10 + 16 * footer.len() as u32;
        let (width, height) = body.dim_in_pixel();
        let (body, foot) = body.split_vertically(height.saturating_sub(footer_height));
        let grey = TextStyle::from((FONT, 12)).color(&RGBColor(70, 70, 70));
        for (i, line) in footer.iter().enumerate() {
            foot.draw(&Text::new(line.clone(), (16, 6 + 16 * i as i32), grey.clone()))?;
        }
        match &self.body {
            Body::Lines { series, x_desc, y_desc, sweep } => {
                let (plot, side) = body.split_horizontally(width - LEGEND_WIDTH);
                let entries: Vec<(String, RGBAColor)> =
                    series.iter().map(|(n, _)| (n.clone(), palette.of(n))).collect();
                legend(&side, &entries)?;
                if *sweep {
                    sweep_chart(&plot, series, x_desc, y_desc, palette)?;
                } else {
                    percentile_chart(&plot, series, x_desc, y_desc, palette)?;
                }
            }
            Body::Bars { items, x_desc, log, bytes } => {
                bars(&body, items, x_desc, *log, *bytes, palette)?;
            }
        }
        root.present()?;
        Ok(())
    }
}

/// The legend, in its own column beside the plot: a line, a dot and a name
/// per server, top to bottom.
fn legend(area: &Area, entries: &[(String, RGBAColor)]) -> Result<()> {
    let name = TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new("server", (8, 30), name.clone()))?;
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = 56 + 22 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (32, y)], color.stroke_width(2)))?;
        area.draw(&Circle::new((20, y), 3, color.filled()))?;
        area.draw(&Text::new(label.clone(), (40, y), name.clone()))?;
    }
    Ok(())
}

/// Round trips/s against connections: log x, linear y.
fn sweep_chart(
    area: &Area,
    series: &[(String, Vec<(f64, f64)>)],
    x_desc: &str,
    y_desc: &str,
    palette: &Colors,
) -> Result<()> {
    let all = series.iter().flat_map(|(_, p)| p.iter().copied());
    let (x_max, y_max) = all.fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((0.8f64..x_max * 1.5).log_scale(), 0f64..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if *y == 0.0 { "0".into() } else { rate(*y) })
        .label_style((FONT, 14))
        .draw()?;
    for (name, pts) in series {
        let color = palette.of(name);
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    Ok(())
}

/// Latency against percentile: x = number of nines, log y.
fn percentile_chart(
    area: &Area,
    series: &[(String, Vec<(f64, f64)>)],
    x_desc: &str,
    y_desc: &str,
    palette: &Colors,
) -> Result<()> {
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // x in thousandths of a nine, so that the ticks can sit at 50 %, 90 %,
    // 99 %, … (key points need an integer axis here).
    let milli = |x: f64| (x * 1000.0).round() as i32;
    let nines_50 = milli(-(0.5f64.log10()));
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (nines_50 - 150..4100).with_key_points(vec![nines_50, 1000, 2000, 3000, 4000]),
            (lo..hi).log_scale().with_key_points(one_two_five(lo, hi)),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| percentile_label(*x as f64 / 1000.0))
        .y_label_formatter(&|y| duration_ns(*y))
        .label_style((FONT, 14))
        .draw()?;
    for (name, pts) in series {
        let color = palette.of(name);
        let pts: Vec<(i32, f64)> = pts.iter().map(|&(x, y)| (milli(x), y)).collect();
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    Ok(())
}

/// The ticks of a log axis: 1, 2, 5, 10, 20, 50, … between `lo` and `hi`.
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    (0..12)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|&v| v >= lo && v <= hi)
        .collect()
}

/// `0` → `0%`, `1` → `90%`, `3` → `99.9%`.
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines - 2.0 - 1e-9).ceil().max(0.0) as usize;
    format!("{p:.decimals$}%")
}

/// The ticks of a log axis of bytes: powers of 4 (16B, 64B, 256B, 1KiB,
/// 4KiB, …) between `lo` and `hi`, labelled in the units of the bars'
/// own labels (B, KiB, MiB).
fn byte_ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..16).map(|k| 4f64.powi(k)).filter(|&v| v >= lo && v <= hi).collect()
}

/// One horizontal bar per server, top to bottom in the order given, its
/// name on the left and its value at its end. `log` for values that span
/// orders of magnitude; `in_bytes` for bytes, otherwise nanoseconds.
fn bars(
    area: &Area,
    items: &[(String, f64)],
    x_desc: &str,
    log: bool,
    in_bytes: bool,
    palette: &Colors,
) -> Result<()> {
    let n = items.len();
    let show = |v: f64| if in_bytes { bytes(v) } else { duration_ns(v) };
    // Item i sits in segment n - 1 - i, so the first is on top; the
    // segmented axis of 0..=last has one segment per bar, each labelled
    // at its centre.
    let last = n - 1;
    let slot = |i: usize| last - i;
    let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    let y_label = move |y: &SegmentValue<usize>| match y {
        SegmentValue::CenterOf(j) if *j <= last => names[last - j].clone(),
        _ => String::new(),
    };
    let y_range = (0..last).into_segmented();
    let top = items.iter().map(|i| i.1).fold(1.0, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder.margin(16).margin_right(32).x_label_area_size(48).y_label_area_size(130);
    let value_style = TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Left, VPos::Center));
    // A bar from `from` to `to`, about a third of its segment left blank.
    let gap = (SIZE.1 / 6 / n as u32).clamp(2, 20);
    let bar = |i: usize, from: f64, to: f64| {
        let color = palette.of(&items[i].0);
        let mut bar = Rectangle::new(
            [(from, SegmentValue::Exact(slot(i))), (to, SegmentValue::Exact(slot(i) + 1))],
            color.filled(),
        );
        bar.set_margin(gap, gap, 0, 0);
        bar
    };
    if log {
        let bottom = items.iter().map(|i| i.1).fold(f64::MAX, f64::min).max(1.0) / 2.0;
        let hi = top * 6.0;
        let x_range = (bottom..hi).log_scale().with_key_points(byte_ticks(bottom, hi));
        let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .x_desc(x_desc)
            .x_label_formatter(&|x| show(*x))
            .y_label_formatter(&y_label)
            .label_style((FONT, 14))
            .draw()?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| bar(i, bottom, *v)))?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            Text::new(show(*v), (v * 1.08, SegmentValue::CenterOf(slot(i))), value_style.clone())
        }))?;
    } else {
        let x_range = 0f64..top * 1.2;
        let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .x_desc(x_desc)
            .x_label_formatter(&|x| show(*x))
            .y_label_formatter(&y_label)
            .label_style((FONT, 14))
            .draw()?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| bar(i, 0.0, *v)))?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            let at = (v + top * 0.01, SegmentValue::CenterOf(slot(i)));
            Text::new(show(*v), at, value_style.clone())
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_by_their_nines() {
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(percentile_label(0.301), "50%");
    }

    #[test]
    fn the_memory_axis_speaks_the_units_of_its_labels() {
        let ticks: Vec<String> = byte_ticks(50.0, 20_000.0).into_iter().map(bytes).collect();
        assert_eq!(ticks, ["64B", "256B", "1KiB", "4KiB", "16KiB"]);
    }

    #[test]
    fn latency_ticks_are_round() {
        assert_eq!(one_two_five(300.0, 6000.0), [500.0, 1000.0, 2000.0, 5000.0]);
    }

    #[test]
    fn footers_wrap_at_spaces() {
        let long = "word ".repeat(60);
        let lines = wrap(long.trim());
        assert!(lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= FOOTER_CHARS));
        assert_eq!(lines.join(" "), long.trim());
    }
}
