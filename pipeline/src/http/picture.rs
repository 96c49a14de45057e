//! The impact map as a standalone SVG (`GET /v1/incidents/{id}/map.svg`, and the page's
//! picture): a layered layout, callers above the alerted services and callees below, one
//! row per hop, each row in name order. Nodes are coloured by state; asynchronous and
//! declared edges are dashed. Every node is a `<g class="node STATE"
//! data-service="NAME">`, so a page script (or a test) can find it.

use std::collections::BTreeMap;
use std::fmt::Write;

use devloom_schemas::{CandidateList, Direction, EdgeOrigin, HealthState, ImpactMap, ImpactNode};

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 44.0;
const GAP_X: f64 = 24.0;
const ROW_H: f64 = 96.0;
const MARGIN: f64 = 20.0;
const HEADER_H: f64 = 56.0;
const LINE_H: f64 = 18.0;

/// The state's name, as CSS classes and `data-state` carry it.
pub fn state_name(state: HealthState) -> &'static str {
    match state {
        HealthState::Red => "red",
        HealthState::Amber => "amber",
        HealthState::Gray => "gray",
        HealthState::Unknown => "unknown",
    }
}

fn fill(state: HealthState) -> &'static str {
    match state {
        HealthState::Red => "#d64545",
        HealthState::Amber => "#f0a830",
        HealthState::Gray => "#d5d9de",
        HealthState::Unknown => "#ffffff",
    }
}

/// Escapes text for XML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A name cut to fit a node.
fn short(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        name.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The row of a node: callers above (negative), roots at 0, callees below.
fn row(n: &ImpactNode) -> i64 {
    match n.direction {
        Direction::Upstream => -i64::from(n.hops),
        Direction::Root => 0,
        Direction::Downstream => i64::from(n.hops),
    }
}

/// The map (with the top candidates of `candidates`, when given) as an SVG document.
pub fn map_svg(map: &ImpactMap, candidates: Option<&CandidateList>) -> String {
    // One box per service name (a service in two regions is drawn once, nearest first).
    let mut placed: BTreeMap<&str, &ImpactNode> = BTreeMap::new();
    for n in &map.nodes {
        placed.entry(n.service.as_str()).or_insert(n);
    }
    let mut rows: BTreeMap<i64, Vec<&ImpactNode>> = BTreeMap::new();
    for n in placed.values() {
        rows.entry(row(n)).or_default().push(n);
    }
    let widest = rows.values().map(Vec::len).max().unwrap_or(1).max(1) as f64;
    let width = (MARGIN * 2.0 + widest * NODE_W + (widest - 1.0) * GAP_X).max(520.0);
    let top = rows.keys().next().copied().unwrap_or(0);
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (r, nodes) in &rows {
        let span = nodes.len() as f64 * NODE_W + (nodes.len() as f64 - 1.0) * GAP_X;
        let x0 = (width - span) / 2.0;
        let y = HEADER_H + MARGIN + (r - top) as f64 * ROW_H;
        for (i, n) in nodes.iter().enumerate() {
            at.insert(n.service.as_str(), (x0 + i as f64 * (NODE_W + GAP_X), y));
        }
    }
    let graph_h = rows.len().max(1) as f64 * ROW_H;
    let shown: Vec<_> = candidates.map(|l| l.candidates.iter().take(3).collect()).unwrap_or_default();
    let low = candidates.is_some_and(|l| l.low_confidence);
    let foot =
        if shown.is_empty() { 0.0 } else { (shown.len() as f64 + 1.0 + f64::from(u8::from(low))) * LINE_H };
    let height = HEADER_H + MARGIN + graph_h + foot + MARGIN;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="system-ui, sans-serif" font-size="12" data-incident="{}" data-version="{}">"#,
        esc(&map.incident_id),
        map.version
    );
    svg.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##);
    let _ = write!(svg, r##"<rect width="100%" height="100%" fill="#fafbfc"/>"##);
    let verdict = serde_json::to_value(map.verdict).ok().and_then(|v| v.as_str().map(str::to_string));
    let status = serde_json::to_value(map.status).ok().and_then(|v| v.as_str().map(str::to_string));
    let _ = write!(
        svg,
        r#"<text x="{MARGIN}" y="24" font-size="16" font-weight="600" class="title">{} — {} ({})</text>"#,
        esc(&map.root_services.join(", ")),
        esc(verdict.as_deref().unwrap_or("?")),
        esc(status.as_deref().unwrap_or("?"))
    );
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="44" fill="#555">{} · version {} · {}{}</text>"##,
        esc(&map.incident_id),
        map.version,
        esc(&map.event_time),
        map.omitted_nodes.map(|n| format!(" · {n} more services not drawn")).unwrap_or_default()
    );
    for e in &map.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(e.caller.as_str()), at.get(e.callee.as_str()))
        else {
            continue;
        };
        let (sx, sy, ex, ey) = if y2 > y1 {
            (x1 + NODE_W / 2.0, y1 + NODE_H, x2 + NODE_W / 2.0, y2)
        } else if y2 < y1 {
            (x1 + NODE_W / 2.0, y1, x2 + NODE_W / 2.0, y2 + NODE_H)
        } else if x2 > x1 {
            (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0)
        } else {
            (x1, y1 + NODE_H / 2.0, x2 + NODE_W, y2 + NODE_H / 2.0)
        };
        let dashed = e.asynchronous || e.origin == EdgeOrigin::Declared;
        let stroke = if e.state == HealthState::Red { "#b03030" } else { "#777" };
        let _ = write!(
            svg,
            r#"<line class="edge{}{}" data-caller="{}" data-callee="{}" x1="{sx:.1}" y1="{sy:.1}" x2="{ex:.1}" y2="{ey:.1}" stroke="{stroke}" stroke-width="1.5"{} marker-end="url(#arrow)"/>"#,
            if e.asynchronous { " async" } else { "" },
            if e.origin == EdgeOrigin::Declared { " declared" } else { "" },
            esc(&e.caller),
            esc(&e.callee),
            if dashed { r#" stroke-dasharray="6 4""# } else { "" }
        );
    }
    for n in placed.values() {
        let (x, y) = at[n.service.as_str()];
        let state = state_name(n.state);
        let text = if n.state == HealthState::Red || n.state == HealthState::Amber { "#111" } else { "#333" };
        let _ = write!(
            svg,
            r##"<g class="node {state}" data-service="{}" data-state="{state}" data-direction="{}" tabindex="0"><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="7" fill="{}" stroke="#444"{}/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="600" fill="{text}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{text}" font-size="10">err {:.1}% · p99 {:.0} ms</text></g>"##,
            esc(&n.service),
            match n.direction {
                Direction::Root => "root",
                Direction::Upstream => "upstream",
                Direction::Downstream => "downstream",
            },
            esc(&n.service),
            fill(n.state),
            if n.virtual_node || n.state == HealthState::Unknown { r#" stroke-dasharray="4 3""# } else { "" },
            x + NODE_W / 2.0,
            y + 18.0,
            esc(&short(&n.service, 20)),
            x + NODE_W / 2.0,
            y + 34.0,
            n.error_rate.now * 100.0,
            n.p99_ms.now,
        );
    }
    if !shown.is_empty() {
        let y0 = HEADER_H + MARGIN + graph_h;
        let _ = write!(svg, r#"<text x="{MARGIN}" y="{y0:.1}" font-weight="600">Likely causes</text>"#);
        for (i, c) in shown.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<text class="candidate" x="{MARGIN}" y="{:.1}">{}. {} — {:.0}% · {}</text>"#,
                y0 + (i as f64 + 1.0) * LINE_H,
                i + 1,
                esc(&c.service),
                c.confidence,
                esc(&short(&c.summary, 90))
            );
        }
        if low {
            let _ = write!(
                svg,
                r##"<text class="low-confidence" x="{MARGIN}" y="{:.1}" fill="#a05000">Low confidence: no candidate stands out; check the map before acting.</text>"##,
                y0 + (shown.len() as f64 + 1.0) * LINE_H
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(service: &str, state: &str, direction: &str, hops: u32) -> serde_json::Value {
        let m = serde_json::json!({ "now": 0.01, "baseline": 0.0 });
        serde_json::json!({ "service": service, "state": state, "direction": direction, "hops": hops, "path": [],
            "error_rate": m, "p99_ms": m, "requests_per_s": m })
    }

    #[test]
    fn names_are_escaped_rows_follow_direction_and_async_edges_are_dashed() {
        let hostile = "<script>alert(\"x\")</script>&";
        let map: ImpactMap = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "incident_id": "inc-1", "version": 2, "status": "open", "root_services": ["checkout"],
            "verdict": "spreading", "event_time_ns": 0, "event_time": "2026-11-27T09:00:00.000Z",
            "nodes": [node("checkout", "red", "root", 0), node("frontend", "amber", "upstream", 1),
                      node(hostile, "gray", "downstream", 1)],
            "edges": [
                { "caller": "frontend", "callee": "checkout", "origin": "observed", "criticality": "unknown",
                  "traffic_share": 1.0, "state": "amber", "error_rate": { "now": 0.0, "baseline": 0.0 } },
                { "caller": "checkout", "callee": hostile, "origin": "observed", "asynchronous": true,
                  "criticality": "unknown", "traffic_share": 1.0, "state": "gray",
                  "error_rate": { "now": 0.0, "baseline": 0.0 } },
            ],
        }))
        .unwrap();
        let svg = map_svg(&map, None);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("data-service=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;\""));
        assert!(
            svg.contains(
                r#"class="node red" data-service="checkout" data-state="red" data-direction="root""#
            )
        );
        assert!(svg.contains(
            r#"class="node amber" data-service="frontend" data-state="amber" data-direction="upstream""#
        ));
        let y = |service: &str| {
            let at = svg.find(&format!("data-service=\"{service}\"")).unwrap();
            let rect = &svg[at..][svg[at..].find("<rect").unwrap()..];
            let y = &rect[rect.find(" y=\"").unwrap() + 4..];
            y[..y.find('"').unwrap()].parse::<f64>().unwrap()
        };
        assert!(y("frontend") < y("checkout"), "callers above the alerted service");
        let edge = &svg[svg.find(r#"class="edge async""#).unwrap()..];
        assert!(edge[..edge.find("/>").unwrap()].contains("stroke-dasharray"), "asynchronous edges dashed");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>\n"));
    }
}
