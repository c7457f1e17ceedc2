//! The figures for programs: `--format csv` writes `bench-results.csv`,
//! `--format json` writes `bench-results.json`, both beside report.md.
//!
//! Values are raw numbers in the unit their name ends with (`_ns`,
//! `_bytes`, `_per_s`), not the rounded text of the tables.
//!
//! - CSV: one line per repeat of each run (a skipped run has one line,
//!   `status` `skipped`); the columns are [`RUN_COLUMNS`], then one per
//!   figure ([`Fig::key`]), empty where a run has no such figure.
//! - JSON: `{command, started, window_s, warmup_s, repeat, elapsed_s,
//!   environment, runs: [...]}`, each run with
//!   its workload and server fields, `skipped`, `median` (figure → value)
//!   and `repeats` (each with `error`, `figures`, `latency_ns_at_quantile`,
//!   `notes`).

use std::fs;
use std::io;
use std::path::Path;

use clap::ValueEnum;
use serde_json::{json, Map, Value};

use crate::figures::{Fig, Measure, Row};
use crate::report::{environment, Context};
use crate::workloads::Target;

/// A machine-readable format of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `bench-results.csv`: one line per repeat of each run.
    Csv,
    /// `bench-results.json`: every run, its medians and its repeats.
    Json,
}

impl Format {
    pub fn file(self) -> &'static str {
        match self {
            Format::Csv => "bench-results.csv",
            Format::Json => "bench-results.json",
        }
    }
}

/// The columns of the CSV that describe the run, before the figures.
pub const RUN_COLUMNS: [&str; 16] = [
    "workload",
    "family",
    "connections",
    "idle_connections",
    "request_bytes",
    "pipeline",
    "work_ms",
    "server",
    "mode",
    "workers",
    "edge",
    "peer",
    "repeat",
    "status",
    "reason",
    "syscalls_counted_over",
];

/// Write `format`'s file into `dir`.
pub fn write(dir: &Path, format: Format, rows: &[Row], ctx: &Context) -> io::Result<()> {
    let text = match format {
        Format::Csv => csv(rows),
        Format::Json => {
            serde_json::to_string_pretty(&json_value(rows, ctx)).map_err(io::Error::other)? + "\n"
        }
    };
    fs::write(dir.join(format.file()), text)
}

/// The workload and server fields of a row, as (column, value) pairs.
fn run_fields(row: &Row) -> Vec<(&'static str, Value)> {
    let w = &row.run.workload;
    let family = w.family.to_possible_value().map(|v| v.get_name().to_string());
    let (mode, workers, edge, peer) = match &row.run.target {
        Target::Mode { mode, workers, edge } => {
            (json!(mode.name()), json!(workers), json!(edge), Value::Null)
        }
        Target::Peer(p) => (Value::Null, Value::Null, Value::Null, json!(p.name)),
    };
    vec![
        ("workload", json!(w.label())),
        ("family", json!(family)),
        ("connections", json!(w.clients)),
        ("idle_connections", json!(w.idle)),
        ("request_bytes", json!(w.size)),
        ("pipeline", json!(w.pipeline)),
        ("work_ms", json!(w.work_ms)),
        ("server", json!(row.run.target.to_string())),
        ("mode", mode),
        ("workers", workers),
        ("edge", edge),
        ("peer", peer),
    ]
}

fn figures(m: &Measure) -> Map<String, Value> {
    Fig::ALL.iter().filter_map(|&f| Some((f.key().to_string(), json!(m.get(f)?)))).collect()
}

fn json_value(rows: &[Row], ctx: &Context) -> Value {
    let environment: Map<String, Value> = environment(ctx)
        .into_iter()
        .map(|(k, v)| (k.replace(" (UTC)", "_utc").replace(' ', "_").to_lowercase(), json!(v)))
        .collect();
    let runs: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut run: Map<String, Value> =
                run_fields(row).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            run.insert("skipped".into(), json!(row.run.skip));
            run.insert("syscalls_counted_over".into(), json!(row.method().name()));
            let median: Map<String, Value> = Fig::ALL
                .iter()
                .filter_map(|&f| Some((f.key().to_string(), json!(row.median(f)?))))
                .collect();
            run.insert("median".into(), Value::Object(median));
            let repeats: Vec<Value> = row
                .outcomes
                .iter()
                .map(|o| match o {
                    Ok(m) => {
                        let quantiles: Map<String, Value> =
                            m.quantiles.iter().map(|(q, ns)| (q.to_string(), json!(ns))).collect();
                        json!({
                            "error": null,
                            "figures": figures(m),
                            "latency_ns_at_quantile": quantiles,
                            "notes": m.notes,
                        })
                    }
                    Err(e) => json!({ "error": e }),
                })
                .collect();
            run.insert("repeats".into(), json!(repeats));
            Value::Object(run)
        })
        .collect();
    json!({
        "command": ctx.command,
        "started": humantime::format_rfc3339_seconds(ctx.started).to_string(),
        "window_s": ctx.secs,
        "warmup_s": ctx.warmup,
        "repeat": ctx.repeat,
        "elapsed_s": ctx.elapsed_secs,
        "environment": environment,
        "runs": runs,
    })
}

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn field(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(rows: &[Row]) -> String {
    let header: Vec<&str> =
        RUN_COLUMNS.iter().copied().chain(Fig::ALL.iter().map(|f| f.key())).collect();
    let mut out = header.join(",") + "\n";
    for row in rows {
        let base: Vec<Value> = run_fields(row).into_iter().map(|(_, v)| v).collect();
        let mut line = |repeat: Value, status: &str, reason: Option<&str>, m: Option<&Measure>| {
            let mut cells = base.clone();
            cells.push(repeat);
            cells.push(json!(status));
            cells.push(json!(reason));
            cells.push(json!(m.map(|m| m.method.name())));
            cells.extend(Fig::ALL.iter().map(|&f| json!(m.and_then(|m| m.get(f)))));
            let fields: Vec<String> = cells.iter().map(field).collect();
            out += &fields.join(",");
            out.push('\n');
        };
        if let Some(skip) = &row.run.skip {
            line(Value::Null, "skipped", Some(skip), None);
            continue;
        }
        for (i, outcome) in row.outcomes.iter().enumerate() {
            match outcome {
                Ok(m) => line(json!(i + 1), "ok", None, Some(m)),
                Err(e) => line(json!(i + 1), "failed", Some(e), None),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field(&json!("epoll ×2")), "epoll ×2");
        assert_eq!(field(&json!("a, b")), "\"a, b\"");
        assert_eq!(field(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(field(&Value::Null), "");
        assert_eq!(field(&json!(2.5)), "2.5");
    }
}
