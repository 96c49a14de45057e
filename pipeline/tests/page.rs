//! The live impact-map page in a real browser: headless Chromium (Debian's `chromium`,
//! which ./scripts/test installs when missing) driven over the DevTools protocol. The
//! page opens before the incident exists; the incident arrives through the event stream
//! and the test reads the drawn map from the DOM, then again at a phone's width.
//! Screenshots go to Cargo's temp dir for integration tests (`target/tmp`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;

/// Chromium, or `None` (skipping) outside CI when it is not installed.
fn chromium() -> Option<String> {
    let bin = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".into());
    if Command::new(&bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return Some(bin);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{bin} not found: ./scripts/test installs Debian's chromium package");
    }
    eprintln!("skipping: no {bin} (./scripts/test installs Debian's chromium package)");
    None
}

/// What follows `prefix` on the first line of `stream` that starts with it; the rest of
/// the stream is drained on a thread so the child never blocks or dies on a closed pipe.
fn line_after(stream: impl std::io::Read + Send + 'static, prefix: &'static str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("no line starting {prefix:?}: {e}"))
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DevTools protocol session with one page.
struct Cdp {
    ws: tungstenite::WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws.send(json!({ "id": id, "method": method, "params": params }).to_string().into()).unwrap();
        loop {
            let message = self.ws.read().unwrap();
            let Ok(text) = message.to_text() else { continue };
            let reply: Value = serde_json::from_str(text).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise): its value, or the
    /// exception it threw.
    fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if result["exceptionDetails"].is_null() { Ok(result["result"]["value"].clone()) } else { Err(result) }
    }

    /// Evaluates `expression` in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Waits until `expression` is true (an exception, as while the page is still
    /// loading, counts as not yet).
    fn wait_until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.try_eval(expression) != Ok(json!(true)) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::prelude::BASE64_STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// Starts headless Chromium and opens a session with its blank page.
fn browser(bin: &str, profile: &std::path::Path) -> (Killed, Cdp) {
    let mut child = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1280,900", "about:blank"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let endpoint = line_after(child.stderr.take().unwrap(), "DevTools listening on ");
    let child = Killed(child);
    let port = endpoint.trim_start_matches("ws://").split(['/', ':']).nth(1).unwrap().to_string();
    let targets: Value = serde_json::from_str(
        &ureq::get(format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page target");
    let (ws, _) = tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap()).unwrap();
    (child, Cdp { ws, next: 0 })
}

#[test]
fn the_page_draws_an_incident_live_alerted_red_caller_amber_also_on_a_phone() {
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let simulated =
        Command::new(env!("CARGO_BIN_EXE_devloom")).args(["simulate", "-s", "db-latency"]).output().unwrap();
    assert!(simulated.status.success());
    let lines: Vec<&[u8]> = simulated.stdout.split(|b| *b == b'\n').collect();
    let alert = lines.iter().position(|l| l.starts_with(b"{\"alerts\"")).expect("the scenario's alert");

    let mut devloom = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--input", "-", "--listen", "127.0.0.1:0", "-o"])
        .arg(dir.path().join("maps.ndjson"))
        // The example catalogs: whom to page shows on a clicked service.
        .args([
            "--catalog",
            concat!("backstage=", env!("CARGO_MANIFEST_DIR"), "/../examples/catalog/catalog-info.yaml"),
        ])
        .args([
            "--catalog",
            concat!("pagerduty=", env!("CARGO_MANIFEST_DIR"), "/../examples/catalog/pagerduty-export.json"),
        ])
        .args([
            "--catalog",
            concat!("devloom=", env!("CARGO_MANIFEST_DIR"), "/../examples/catalog/devloom-catalog.yaml"),
        ])
        .env_remove("DEVLOOM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = devloom.stdin.take().unwrap();
    let base = line_after(devloom.stderr.take().unwrap(), "devloom: HTTP API on ");
    let devloom = Killed(devloom);

    let (_chromium, mut page) = browser(&bin, &dir.path().join("profile"));
    page.call("Page.enable", json!({}));
    page.call("Page.navigate", json!({ "url": format!("{base}/") }));
    page.wait_until("document.body.dataset.live === 'true'", "the page's event stream to connect");
    assert_eq!(page.eval("document.body.dataset.initialIncidents"), "0", "no incident when the page opened");

    // Half a minute of traffic past the alert: the first map versions, nothing later.
    for line in &lines[..alert + 30] {
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    stdin.flush().unwrap();
    page.wait_until("document.querySelector('#map .node.red') !== null", "the incident to be drawn");
    assert!(
        page.eval("Number(document.body.dataset.updates)").as_u64().unwrap() >= 1,
        "redrawn from the stream"
    );

    let drawn = page.eval(
        "[...document.querySelectorAll('#map .node')].map(g => ({service: g.dataset.service, state: g.dataset.state, \
         direction: g.dataset.direction, callsRoot: [...document.querySelectorAll('#map line.edge')].some(e => \
         e.dataset.caller === g.dataset.service && document.querySelector(`#map .node[data-service=\"${e.dataset.callee}\"]`)?.dataset.direction === 'root')}))",
    );
    let nodes = drawn.as_array().unwrap();
    let root = nodes.iter().find(|n| n["direction"] == "root").expect("the alerted service is drawn");
    assert_eq!(root["service"], "checkout");
    assert_eq!(root["state"], "red", "the alerted service is red: {drawn}");
    assert!(
        nodes.iter().any(|n| n["direction"] == "upstream" && n["callsRoot"] == true && n["state"] == "amber"),
        "a caller of the alerted service is amber: {drawn}"
    );
    let verdict = page.eval("document.getElementById('verdict').textContent");
    assert!(verdict.as_str().unwrap().starts_with("Verdict: "), "{verdict}");
    assert!(
        page.eval("document.querySelectorAll('#candidates li').length").as_u64().unwrap() >= 1,
        "candidates listed"
    );

    // A click on a service shows its numbers against baseline.
    page.eval("document.querySelector('#map .node[data-service=\"checkout\"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))");
    let detail =
        page.eval("[...document.querySelectorAll('#detail tr[data-metric]')].map(r => r.dataset.metric)");
    assert_eq!(detail, json!(["error rate", "p99", "traffic"]));
    let whom = page.eval("document.querySelector('#detail .catalog')?.textContent");
    assert_eq!(
        whom,
        json!("owner team-checkout · page Checkout On-Call · PagerDuty PCHKOUT"),
        "from the catalogs"
    );
    let shot = page.screenshot("page-desktop.png");

    // A phone on call: 390 px wide, nothing wider than the screen.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    );
    page.eval("refresh()");
    assert_eq!(
        page.eval("document.documentElement.scrollWidth <= 390"),
        json!(true),
        "no sideways scrolling at 390 px"
    );
    assert_eq!(
        page.eval("document.querySelector('#map svg').getBoundingClientRect().width <= 390"),
        json!(true)
    );
    assert_eq!(page.eval("document.querySelector('#map .node.red') !== null"), json!(true));
    let phone = page.screenshot("page-phone.png");
    eprintln!("screenshots: {} {}", shot.display(), phone.display());
    drop(stdin);
    drop(devloom);
}
