//! The report's charts, drawn as SVG with `plotters` (its SVG backend only:
//! text stays `<text>` for the browser to render, so no font library is
//! needed to build or run this).
//!
//! - `throughput.svg`: round trips/s against connections, one line per server;
//! - `latency.svg`: latency by percentile at the base load, one line per server;
//! - `cpu.svg`: server CPU time per round trip at the base load;
//! - `memory.svg`: resident memory per idle connection (hold test).

use std::error::Error;
use std::io;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::figures::{duration_ns, rate, Fig, Row};
use crate::workloads::{bytes, Family, BASE_CLIENTS};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const SIZE: (u32, u32) = (900, 540);
const FONT: &str = "sans-serif";

/// Draw every chart the rows have data for into `dir`; returns
/// `(file name, caption)` of each one written.
pub fn draw_all(dir: &Path, rows: &[Row]) -> io::Result<Vec<(String, String)>> {
    let palette = Colors::new(rows);
    let palette = &palette;
    let mut written = Vec::new();
    let mut add = |file: &str, caption: &str, drawn: Result<bool>| -> io::Result<()> {
        match drawn {
            Ok(true) => written.push((file.to_string(), caption.to_string())),
            Ok(false) => {}
            Err(e) => return Err(io::Error::other(format!("{file}: {e}"))),
        }
        Ok(())
    };
    add(
        "throughput.svg",
        "Round trips per second vs connections",
        throughput(&dir.join("throughput.svg"), rows, palette),
    )?;
    let base = base_rows(rows);
    if let Some(label) = base.first().map(|r| r.run.workload.label()) {
        add(
            "latency.svg",
            &format!("Latency percentiles, {label}"),
            latency(&dir.join("latency.svg"), &base, &label, palette),
        )?;
        let items: Vec<(String, f64)> = base
            .iter()
            .filter_map(|r| Some((r.run.target.to_string(), r.median(Fig::CpuPerRt)?)))
            .collect();
        add(
            "cpu.svg",
            &format!("Server CPU time per round trip, {label}"),
            bars(
                &dir.join("cpu.svg"),
                &format!("Server CPU time per round trip ({label})"),
                "CPU per round trip",
                &items,
                false,
                &|v| duration_ns(v),
                palette,
            ),
        )?;
    }
    let hold: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.run.workload.family == Family::Hold)
        .filter_map(|r| Some((r.run.target.to_string(), r.median(Fig::RssPerConn)?)))
        .collect();
    add(
        "memory.svg",
        "Resident memory per idle connection",
        bars(
            &dir.join("memory.svg"),
            "Server memory per idle connection (log scale)",
            "RSS per connection",
            &hold,
            true,
            &|v| bytes(v),
            palette,
        ),
    )?;
    Ok(written)
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
/// included): the load the targets are set at.
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

fn throughput(path: &Path, rows: &[Row], palette: &Colors) -> Result<bool> {
    let sweep: Vec<&Row> = rows
        .iter()
        .filter(|r| r.run.workload.family == Family::Ping && !r.run.target.is_variant())
        .collect();
    // A run that left connections unanswered (a pool smaller than the
    // connection count) measured fewer clients than the axis says: no point.
    let points = |name: &str| -> Vec<(f64, f64)> {
        sweep
            .iter()
            .filter(|r| r.run.target.to_string() == name)
            .filter(|r| r.median(Fig::Starved).unwrap_or(0.0) == 0.0)
            .filter_map(|r| Some((r.run.workload.clients as f64, r.median(Fig::Rps)?)))
            .collect()
    };
    let names = servers(sweep.iter().copied());
    let all: Vec<(f64, f64)> = names.iter().flat_map(|n| points(n)).collect();
    if all.is_empty() {
        return Ok(false);
    }
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let y_max = all.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Round trips per second vs connections", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((0.8f64..x_max).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("connections (one ping in flight each; runs that starved some are left out)")
        .y_desc("round trips / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| rate(*y))
        .label_style((FONT, 14))
        .draw()?;
    for name in &names {
        line(&mut chart, name, points(name), palette.of(name))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(true)
}

fn latency(path: &Path, rows: &[&Row], label: &str, palette: &Colors) -> Result<bool> {
    // x is the number of nines: 1 = 90 %, 2 = 99 %, 3 = 99.9 %.
    let nines = |q: f64| -(1.0 - q).log10();
    let names = servers(rows.iter().copied());
    let series: Vec<(String, Vec<(f64, f64)>)> = names
        .iter()
        .filter_map(|name| {
            let row = rows.iter().find(|r| &r.run.target.to_string() == name)?;
            let pts: Vec<(f64, f64)> =
                row.quantiles().into_iter().map(|(q, ns)| (nines(q), ns.max(1.0))).collect();
            (!pts.is_empty()).then(|| (name.clone(), pts))
        })
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Latency by percentile ({label})"), (FONT, 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..4f64, (lo / 1.5..hi * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log scale)")
        .x_labels(5)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| duration_ns(*y))
        .label_style((FONT, 14))
        .draw()?;
    for (name, pts) in &series {
        line(&mut chart, name, pts.to_vec(), palette.of(name))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(true)
}

/// A log axis's round numbers, in decimal units: `100B`, `1kB`, `10kB`.
fn si(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}MB", v / 1e6),
        v if v >= 1e3 => format!("{}kB", v / 1e3),
        v => format!("{v}B"),
    }
}

/// `0` → `0%`, `1` → `90%`, `3` → `99.9%`.
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines - 2.0).ceil().max(0.0) as usize;
    format!("{p:.decimals$}%")
}

/// A bar per server, its value written above it; `log` for values that
/// span orders of magnitude (bytes per connection: ~100 B to ~10 KiB).
fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    items: &[(String, f64)],
    log: bool,
    show: &dyn Fn(f64) -> String,
    palette: &Colors,
) -> Result<bool> {
    if items.is_empty() {
        return Ok(false);
    }
    let top = items.iter().map(|i| i.1).fold(1.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let n = items.len();
    let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    let x_label = move |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut builder = ChartBuilder::on(&root);
    builder.caption(title, (FONT, 22)).margin(16).x_label_area_size(48).y_label_area_size(72);
    let color = |i: usize| palette.of(&items[i].0);
    // Value labels centred above their bar.
    let above = TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Center, VPos::Bottom));
    // The segmented axis of 0..=last has one segment per bar.
    let last = n - 1;
    if log {
        let bottom = items.iter().map(|i| i.1).fold(f64::MAX, f64::min).max(1.0) / 2.0;
        let mut chart = builder
            .build_cartesian_2d((0..last).into_segmented(), (bottom..top * 3.0).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| si(*y))
            .label_style((FONT, 14))
            .draw()?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), bottom), (SegmentValue::Exact(i + 1), *v)],
                color(i).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            Text::new(show(*v), (SegmentValue::CenterOf(i), v * 1.05), above.clone())
        }))?;
    } else {
        let mut chart = builder.build_cartesian_2d((0..n).into_segmented(), 0f64..top * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| show(*y))
            .label_style((FONT, 14))
            .draw()?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)],
                color(i).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            Text::new(show(*v), (SegmentValue::CenterOf(i), v + top * 0.02), (FONT, 14))
        }))?;
    }
    root.present()?;
    Ok(true)
}

/// One server's line, a dot on each measured point, and its legend entry.
fn line<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    name: &str,
    pts: Vec<(f64, f64)>,
    color: RGBAColor,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    Ok(())
}

fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> Result<()>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
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
    }
}
