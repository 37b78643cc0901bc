//! What a workload hands back: its JSON line, a row of the human table, and whether it passed.

use serde_json::Value;

pub struct Outcome {
    pub json: Value,
    /// Rows of the summary table (none for `latency` and `limits`, several for `scale`).
    pub rows: Vec<Row>,
    /// Tables of their own, printed after the summary: (title, rendered table).
    pub tables: Vec<(String, String)>,
    pub ok: bool,
}

impl Outcome {
    pub fn single(json: Value, row: Row, ok: bool) -> Self {
        Self { json, rows: vec![row], tables: Vec::new(), ok }
    }
}

/// One line of the summary table; `None` prints as `-`.
pub struct Row {
    pub workload: String,
    /// "100000 ch" or "100000 rep".
    pub size: String,
    /// Seconds to enqueue (cycle) or to accept every report (storms).
    pub first_s: Option<f64>,
    /// Seconds until everything was validated / refreshed.
    pub done_s: Option<f64>,
    /// Channels (or reports) per second over `done_s` (storm-one: reports over `first_s`).
    pub per_s: Option<f64>,
    pub graph_per_channel: Option<f64>,
    pub refresh_calls: Option<u64>,
    pub peak_backlog: Option<u64>,
    pub worker_rss_mib: Option<f64>,
    pub lost: u64,
    pub worker_ok: bool,
    /// The `cpu` object of the JSON line.
    pub cpu: Value,
}

pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn fixed(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let header = [
        "workload",
        "size",
        "enq/accept s",
        "done s",
        "per s",
        "graph req/ch",
        "/me/accounts",
        "peak backlog",
        "worker MiB",
        "lost",
        "worker",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.clone(),
                r.size.clone(),
                fixed(r.first_s, 2),
                fixed(r.done_s, 2),
                fixed(r.per_s, 0),
                fixed(r.graph_per_channel, 2),
                opt(r.refresh_calls),
                opt(r.peak_backlog),
                fixed(r.worker_rss_mib, 1),
                r.lost.to_string(),
                if r.worker_ok { "ok".to_owned() } else { "DIED".to_owned() },
            ]
        })
        .collect();
    render(&mut out, &header, &lines);
    out.push('\n');
    let cpu_header =
        ["workload", "wall s", "worker cpu s", "bench cpu s", "postgres cpu s", "redis cpu s", "machine busy"];
    let cpu_lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let f = |k: &str| r.cpu.get(k).and_then(Value::as_f64);
            vec![
                r.workload.clone(),
                fixed(f("wall_s"), 2),
                fixed(f("worker_cpu_s"), 2),
                fixed(f("bench_cpu_s"), 2),
                fixed(f("postgres_cpu_s"), 2),
                fixed(f("redis_cpu_s"), 2),
                match (f("machine_busy_pct"), r.cpu.get("cores").and_then(Value::as_u64)) {
                    (Some(p), Some(c)) => format!("{p:.0}% of {c} cores"),
                    _ => "-".to_owned(),
                },
            ]
        })
        .collect();
    render(&mut out, &cpu_header, &cpu_lines);
    out
}

/// A table: the first column left-aligned, the others right-aligned.
pub fn render_table(header: &[&str], lines: &[Vec<String>]) -> String {
    let mut out = String::new();
    render(&mut out, header, lines);
    out
}

fn render(out: &mut String, header: &[&str], lines: &[Vec<String>]) {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len());
        }
    }
    let row = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths.iter().copied())
            .enumerate()
            .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    out.push_str(&row(header.to_vec()));
    out.push('\n');
    let total: usize = widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for line in lines {
        out.push_str(&row(line.iter().map(String::as_str).collect()));
        out.push('\n');
    }
}

/// The JSON line of a workload, `workload` (then `ok`, `channels`, `reports`) first, the other
/// keys in alphabetical order.
pub fn json_line(v: &Value) -> String {
    const FIRST: [&str; 4] = ["workload", "ok", "channels", "reports"];
    let Some(map) = v.as_object() else { return v.to_string() };
    let quoted = |k: &str| Value::String(k.to_owned()).to_string();
    let mut parts: Vec<String> =
        FIRST.iter().filter_map(|k| map.get(*k).map(|val| format!("{}:{val}", quoted(k)))).collect();
    parts.extend(
        map.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())).map(|(k, val)| format!("{}:{val}", quoted(k))),
    );
    format!("{{{}}}", parts.join(","))
}
