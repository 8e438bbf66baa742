//! A self-contained HTML report of one run — cases × targets matrix, per-target aggregates,
//! feedback — that opens in any browser without Benchtop. No scripts, no external resources;
//! every piece of text is escaped, so a model's `<img onerror=…>` is shown, never run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use benchtop_core::store::{ExportFilter, ExportRow, Id, Store};

use crate::{ExportError, Result};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Default)]
struct Aggregate {
    results: u64,
    errors: u64,
    passed: u64,
    judged: u64,
    latencies: Vec<f64>,
    cost: f64,
    ratings: Vec<u8>,
    up: u64,
    down: u64,
}

/// Write the report of run `run_id` to `path`.
pub fn html_report(store: &Store, run_id: Id, path: &Path) -> Result<()> {
    let filter = ExportFilter { run_id: Some(run_id), ..Default::default() };
    let mut run_name = None;
    let mut targets: Vec<String> = Vec::new();
    let mut cases: Vec<(String, String)> = Vec::new(); // (key, input)
    let mut cells: HashMap<(String, String), ExportRow> = HashMap::new();
    let mut aggregates: HashMap<String, Aggregate> = HashMap::new();
    store.for_each_export_row(&filter, |row| {
        run_name.get_or_insert_with(|| row.run.clone());
        if !targets.contains(&row.target) {
            targets.push(row.target.clone());
        }
        let key = row.case_id.map(|c| format!("case {c}")).unwrap_or_else(|| row.input_hash.clone());
        if !cases.iter().any(|(k, _)| *k == key) {
            cases.push((key.clone(), row.input.clone()));
        }
        let a = aggregates.entry(row.target.clone()).or_default();
        a.results += 1;
        a.errors += u64::from(row.answer.error.is_some());
        if let Some(p) = row.passed {
            a.judged += 1;
            a.passed += u64::from(p);
        }
        a.latencies.extend(row.answer.latency_ms);
        a.cost += row.answer.cost_usd.unwrap_or(0.0);
        a.ratings.extend(row.rating.as_ref().map(|r| r.value));
        match row.thumb.as_ref().map(|t| t.value) {
            Some(true) => a.up += 1,
            Some(false) => a.down += 1,
            None => {}
        }
        cells.insert((key, row.target.clone()), row);
        Ok(())
    })?;
    let Some(run_name) = run_name else {
        return Err(ExportError::Invalid(format!("run {run_id} has no results (or does not exist)")));
    };

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>\
         <p class=\"meta\">Run {run_id} · {n} cases × {t} targets · exported by Benchtop {version}</p>",
        title = escape(&run_name),
        n = cases.len(),
        t = targets.len(),
        version = env!("CARGO_PKG_VERSION"),
    );
    html.push_str("<h2>Targets</h2><table><tr><th>target</th><th>results</th><th>errors</th><th>pass rate</th><th>latency p50 / p95 ms</th><th>cost USD</th><th>mean rating</th><th>👍 / 👎</th></tr>");
    for target in &targets {
        let a = aggregates.remove(target).unwrap_or_default();
        let mut lat = a.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "–".into())
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{:.4}</td><td>{}</td><td>{} / {}</td></tr>",
            escape(target),
            a.results,
            a.errors,
            if a.judged == 0 { "–".to_string() } else { format!("{:.0} % ({}/{})", 100.0 * a.passed as f64 / a.judged as f64, a.passed, a.judged) },
            pct(0.5),
            pct(0.95),
            a.cost,
            if a.ratings.is_empty() { "–".to_string() } else { format!("{:.2}", a.ratings.iter().map(|&r| f64::from(r)).sum::<f64>() / a.ratings.len() as f64) },
            a.up,
            a.down
        );
    }
    html.push_str("</table><h2>Results</h2><table class=\"matrix\"><tr><th>input</th>");
    for target in &targets {
        let _ = write!(html, "<th>{}</th>", escape(target));
    }
    html.push_str("</tr>");
    for (key, input) in &cases {
        let _ = write!(html, "<tr><td class=\"input\">{}</td>", escape(input));
        for target in &targets {
            match cells.get(&(key.clone(), target.clone())) {
                None => html.push_str("<td class=\"empty\">–</td>"),
                Some(row) => html.push_str(&cell(row)),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    std::fs::write(path, html).map_err(|e| ExportError::write(path, e))
}

fn cell(row: &ExportRow) -> String {
    let mut out = String::new();
    let class = match row.passed {
        Some(true) => "pass",
        Some(false) => "fail",
        None if row.answer.error.is_some() => "fail",
        None => "",
    };
    let _ = write!(out, "<td class=\"{class}\">");
    if let Some(error) = &row.answer.error {
        let _ = write!(out, "<div class=\"error\">error: {}</div>", escape(error));
    }
    if let Some(label) = &row.answer.label {
        let _ = write!(out, "<div class=\"label\">{}</div>", escape(label));
    }
    if let Some(output) = &row.answer.output {
        let _ = write!(out, "<pre>{}</pre>", escape(output));
    }
    let mut facts = Vec::new();
    if let Some(l) = row.answer.latency_ms {
        facts.push(format!("{l:.0} ms"));
    }
    if let (Some(i), Some(o)) = (row.answer.tokens_in, row.answer.tokens_out) {
        facts.push(format!("{i}→{o} tok"));
    }
    if let Some(c) = row.answer.cost_usd {
        facts.push(format!("${c:.5}"));
    }
    if let Some(t) = &row.thumb {
        facts.push(if t.value { "👍".into() } else { "👎".into() });
    }
    if let Some(r) = &row.rating {
        facts.push(format!("{}★", r.value));
    }
    facts.extend(row.tags.iter().map(|t| format!("#{}", escape(t))));
    if !facts.is_empty() {
        let _ = write!(out, "<div class=\"facts\">{}</div>", facts.join(" · "));
    }
    if let Some(c) = &row.correction_text {
        let _ = write!(out, "<div class=\"correction\">correction: {}</div>", escape(&c.value));
    }
    if let Some(note) = &row.note {
        let _ = write!(out, "<div class=\"note\">{}</div>", escape(note));
    }
    out.push_str("</td>");
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d1d1f;background:#fff}\
h1{font-size:1.4rem}.meta{color:#666}table{border-collapse:collapse;margin:1rem 0;width:100%}\
th,td{border:1px solid #ddd;padding:.4rem .6rem;vertical-align:top;text-align:left}th{background:#f5f5f7}\
pre{white-space:pre-wrap;margin:0;font:13px/1.4 ui-monospace,monospace}.pass{background:#eefbea}.fail{background:#fdecec}\
.facts,.note{color:#666;font-size:12px;margin-top:.3rem}.error{color:#b00020}.label{font-weight:600}\
.correction{color:#0a5;margin-top:.3rem}.input{max-width:24rem}\
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}th{background:#222}th,td{border-color:#333}\
.pass{background:#13301a}.fail{background:#3a1515}}";
