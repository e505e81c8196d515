//! The HTML report: one self-contained file (inline CSS, inline SVG drawn here, no script, no
//! network), so it can be mailed or attached to a ticket and opened anywhere.

use std::fmt::Write as _;

use super::report::{Report, ShareRow};

/// Line colours of the top clients (then grey for `other`).
const PALETTE: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const OTHER_COLOUR: &str = "#999999";
const CHART_CLIENTS: usize = 6;

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}.card b{display:block;font-size:20px}
.card span{color:#666;font-size:12px}table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right}th{background:#f6f6f6}
td.l,th.l{text-align:left}tr.culprit td{background:#fdecea;font-weight:600}.note{color:#666;font-size:12px}
.charts{display:flex;gap:24px;flex-wrap:wrap}svg text{font-size:11px;fill:#333}";

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A short human number: 1234567 → 1.2M.
fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1}G", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.0}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kubeguard audit report</title><style>{CSS}</style></head><body>"
    );
    let _ = writeln!(
        h,
        "<h1>kubeguard audit report</h1><div class=\"meta\">{} to {} · {} events from {} file(s) · apiserver {} · window {} s</div>",
        esc(r.from.as_deref().unwrap_or("-")),
        esc(r.to.as_deref().unwrap_or("-")),
        r.input.events,
        r.input.files.len(),
        esc(&r.server_version),
        r.window_seconds
    );
    cards(&mut h, r);
    let _ = writeln!(h, "<h2>Cost over time, top clients</h2>\n{}", time_chart(r));
    h.push_str("<h2>Who costs what</h2>\n");
    clients_table(&mut h, r);
    h.push_str("<h2>Share of cost</h2><div class=\"charts\">\n");
    let _ = write!(h, "{}", bar_chart("by verb", &r.by_verb, 8));
    let _ = write!(h, "{}", bar_chart("by resource", &r.by_resource, 10));
    h.push_str("</div>\n");
    policy_section(&mut h, r);
    if r.input.malformed > 0 {
        let _ = writeln!(
            h,
            "<h2>Input</h2><p>{} malformed line(s), first at {}</p>",
            r.input.malformed,
            esc(&r.input.malformed_at.join(", "))
        );
    }
    for n in &r.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    h.push_str("</body></html>\n");
    h
}

fn cards(h: &mut String, r: &Report) {
    let top = r.clients.first();
    let items = [
        (human(r.totals.requests as f64), "requests".to_string()),
        (
            top.map_or("-".into(), |c| pct(c.cost_share)),
            format!(
                "of the cost: {}",
                top.map_or("-".to_string(), |c| c.user.clone())
            ),
        ),
        (
            format!("{:.0} s", r.totals.apiserver_seconds),
            "apiserver time".into(),
        ),
        (
            human(r.policy.lists_rewritten as f64),
            "LISTs rewritten".into(),
        ),
        (
            human(r.policy.etcd_objects_avoided as f64),
            format!(
                "etcd objects avoided ({})",
                pct(r.policy.etcd_share_avoided)
            ),
        ),
        (
            human(r.policy.would_throttle as f64),
            "requests throttled".into(),
        ),
        (
            r.policy.deletes_refused.to_string(),
            "deletes refused".into(),
        ),
    ];
    h.push_str("<div class=\"cards\">");
    for (value, label) in items {
        let _ = write!(
            h,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            esc(&value),
            esc(&label)
        );
    }
    h.push_str("</div>\n");
}

fn clients_table(h: &mut String, r: &Report) {
    h.push_str("<table id=\"clients\"><tr><th class=\"l\">client</th><th>requests</th><th>cost</th><th>cost share</th><th>apiserver s</th><th>time share</th><th>etcd objects</th><th>LISTs rewritten</th><th>throttled</th><th>refused</th><th class=\"l\">dearest request</th></tr>\n");
    let other = (r.other.requests > 0).then_some(&r.other);
    for (i, c) in r.clients.iter().chain(other).enumerate() {
        let class = if i == 0 { " class=\"culprit\"" } else { "" };
        let dearest = c
            .top_requests
            .first()
            .map(|q| format!("{} {} ×{}", q.verb, q.resource, q.requests))
            .unwrap_or_default();
        let name = match c.clients {
            Some(n) => format!("other ({n} clients)"),
            None => c.user.clone(),
        };
        let _ = writeln!(
            h,
            "<tr{class}><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&name),
            c.requests,
            c.cost,
            pct(c.cost_share),
            c.apiserver_seconds,
            pct(c.time_share),
            c.etcd_objects_read,
            c.lists_rewritten,
            c.would_throttle,
            c.deletes_refused + c.would_refuse,
            esc(&dearest)
        );
    }
    h.push_str("</table>\n");
}

fn policy_section(h: &mut String, r: &Report) {
    let p = &r.policy;
    h.push_str("<h2>What kubeguard would have done</h2>\n");
    let read = r.totals.etcd_objects_read as f64;
    let avoided = p.etcd_objects_avoided as f64;
    let _ = writeln!(
        h,
        "<p>{} LISTs rewritten to the watch cache; etcd objects read {} → {} ({} avoided). Requests throttled (limits {}): {}. Unchunked LISTs refused: {}.</p>",
        p.lists_rewritten,
        human(read),
        human((read - avoided).max(0.0)),
        pct(p.etcd_share_avoided),
        esc(&p.limits_mode),
        p.would_throttle,
        p.would_refuse
    );
    // Two bars: etcd objects read as logged, and with the rewrites.
    let max = read.max(1.0);
    let w = 600.0;
    let _ = writeln!(
        h,
        "<svg id=\"etcd-avoided\" width=\"760\" height=\"64\" viewBox=\"0 0 760 64\" role=\"img\" aria-label=\"etcd objects read\">\
<text x=\"0\" y=\"20\">as logged</text><rect x=\"130\" y=\"8\" width=\"{:.1}\" height=\"18\" fill=\"#d62728\"/><text x=\"{:.1}\" y=\"21\">{}</text>\
<text x=\"0\" y=\"50\">with kubeguard</text><rect x=\"130\" y=\"38\" width=\"{:.1}\" height=\"18\" fill=\"#2ca02c\"/><text x=\"{:.1}\" y=\"51\">{}</text></svg>",
        w * read / max,
        136.0 + w * read / max,
        human(read),
        w * (read - avoided).max(0.0) / max,
        136.0 + w * (read - avoided).max(0.0) / max,
        human((read - avoided).max(0.0)),
    );
    let _ = writeln!(h, "<h3>Deletes refused ({})</h3>", p.deletes_refused);
    if p.refused_deletes.is_empty() {
        h.push_str("<p>None.</p>\n");
        return;
    }
    h.push_str("<table id=\"deletes\"><tr><th class=\"l\">time</th><th class=\"l\">who</th><th class=\"l\">verb</th><th class=\"l\">what</th><th>apiserver answered</th></tr>\n");
    for d in &p.refused_deletes {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(&d.time),
            esc(&d.user),
            esc(&d.verb),
            esc(&d.target),
            d.code
        );
    }
    h.push_str("</table>\n");
}

/// Horizontal bars of the largest shares.
fn bar_chart(title: &str, rows: &[ShareRow], n: usize) -> String {
    let rows: Vec<&ShareRow> = rows.iter().take(n).collect();
    let row_h = 22.0;
    let height = 30.0 + row_h * rows.len() as f64;
    let (label_w, bar_w) = (200.0, 300.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"share\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"share of cost {t}\"><text x=\"0\" y=\"14\" style=\"font-weight:600\">{t}</text>",
        w = label_w + bar_w + 60.0,
        t = esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 24.0 + row_h * i as f64;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y + 13.0,
            esc(&truncate(&r.name, 30)),
            (bar_w * r.cost_share).max(1.0),
            row_h - 6.0,
            PALETTE[1],
            label_w + bar_w * r.cost_share + 6.0,
            y + 13.0,
            pct(r.cost_share)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One line per top client (and `other`), cost per window.
fn time_chart(r: &Report) -> String {
    let (w, h) = (1100.0, 320.0);
    let (left, right, top, bottom) = (70.0, 230.0, 10.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let names: Vec<&str> = r
        .clients
        .iter()
        .take(CHART_CLIENTS)
        .map(|c| c.user.as_str())
        .collect();
    let n = r.windows.len();
    let series: Vec<Vec<f64>> = names
        .iter()
        .map(|name| {
            r.windows
                .iter()
                .map(|win| {
                    win.clients
                        .iter()
                        .find(|(c, _)| c == name)
                        .map_or(0.0, |(_, v)| *v)
                })
                .collect()
        })
        .chain(std::iter::once(
            r.windows
                .iter()
                .map(|win| {
                    let named: f64 = win
                        .clients
                        .iter()
                        .filter(|(c, _)| names.contains(&c.as_str()))
                        .map(|(_, v)| v)
                        .sum();
                    (win.cost - named).max(0.0)
                })
                .collect(),
        ))
        .collect();
    let max = series
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |i: usize| {
        left + if n > 1 {
            pw * i as f64 / (n - 1) as f64
        } else {
            pw / 2.0
        }
    };
    let y = |v: f64| top + ph - ph * v / max;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"cost-over-time\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"cost over time per client\">"
    );
    // Axes and grid: four horizontal lines with their values.
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + pw,
            left - 6.0,
            yy + 4.0,
            human(v)
        );
    }
    let _ = write!(
        s,
        "<text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">cost per window</text>",
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, label) in [
        (0, r.windows.first()),
        (n.saturating_sub(1), r.windows.last()),
    ] {
        if let Some(wr) = label {
            let anchor = if i == 0 { "start" } else { "end" };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                h - bottom + 18.0,
                esc(&wr.start)
            );
        }
    }
    for (k, values) in series.iter().enumerate() {
        let colour = if k < names.len() {
            PALETTE[k % PALETTE.len()]
        } else {
            OTHER_COLOUR
        };
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let name = names.get(k).copied().unwrap_or("other");
        let ly = top + 16.0 * k as f64 + 8.0;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"4\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left + pw + 12.0,
            ly - 4.0,
            left + pw + 30.0,
            ly + 1.0,
            esc(&truncate(name, 30))
        );
    }
    s.push_str("</svg>");
    s
}
