//! Thirty kinds of bad records, shared by the hostile-stream tests (files, stdin, Kafka).

/// One OTLP JSON request with one SERVER span of `service` from `start` to `end` (ns).
pub fn span(service: &str, start: &str, end: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET /","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}]}}]}}]}}"#
    )
}

/// Every kind of bad record, each on its own line (bytes: some are not UTF-8), with what
/// its dead letter's reason must contain.
pub fn bad_records() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let long = format!(r#"{{"service":"checkout","status":"firing","summary":"{}"}}"#, "x".repeat(3 << 20));
    vec![
        ("random bytes", b"\x8f\x01\xff\xfe garbage \x00\x07".to_vec(), "15 bytes of content-type"),
        ("invalid UTF-8 in JSON", b"{\"service\":\"caf\xe9\",\"status\":\"firing\"}".to_vec(), "invalid unicode code point"),
        ("truncated OTLP JSON", span("checkout", "1", "2").as_bytes()[..60].to_vec(), "EOF while parsing a string"),
        ("plain text", b"hello, this is not telemetry".to_vec(), "starting \"hello, this is not telemetry\""),
        ("deep nesting", deep.into_bytes(), "10000 bytes"),
        ("JSON array", b"[1,2,3]".to_vec(), "starting \"[1,2,3]\""),
        ("JSON number", b"42".to_vec(), "starting \"42\""),
        ("JSON string", b"\"firing\"".to_vec(), "8 bytes"),
        ("empty object", b"{}".to_vec(), "keys [] matches no known format"),
        ("unknown object", br#"{"foo":1,"bar":[true]}"#.to_vec(), "keys [bar, foo] matches no known format"),
        ("NaN", br#"{"service":"checkout","status":NaN}"#.to_vec(), "expected value at line 1 column 32"),
        ("duplicate keys", br#"{"service":"checkout","status":"firing","status":"resolved","starts_at":"2026-11-27T09:00:00Z"}"#.to_vec(), "repeats the key"),
        ("empty alert service", br#"{"service":"","status":"firing","starts_at":"2026-11-27T09:00:00Z"}"#.to_vec(), "an alert must name its service"),
        ("bad alert status", br#"{"service":"checkout","status":"maybe","starts_at":"2026-11-27T09:00:00Z"}"#.to_vec(), "unknown variant `maybe`"),
        ("bad alert time", br#"{"service":"checkout","status":"firing","starts_at":"yesterday"}"#.to_vec(), "not an RFC 3339 timestamp"),
        ("resolved alert without end", br#"{"service":"checkout","status":"resolved","starts_at":"2026-11-27T09:00:00Z"}"#.to_vec(), "a resolved alert needs ends_at"),
        ("Alertmanager alert without service", br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"X"},"startsAt":"2026-11-27T09:00:00Z"}]}"#.to_vec(), "alerts[0].labels: no service label"),
        ("PagerDuty bad action", br#"{"event_action":"explode","routing_key":"k","payload":{"summary":"s","source":"checkout","severity":"critical"}}"#.to_vec(), "got \"explode\""),
        ("empty deploy service", br#"{"service":"","revision":"v2","time":"2026-11-27T09:00:00Z"}"#.to_vec(), "a change must name its service"),
        ("bad deploy kind", br#"{"service":"payments","revision":"v2","time":"2026-11-27T09:00:00Z","kind":"yolo"}"#.to_vec(), "unknown variant `yolo`"),
        ("cause without candidate", br#"{"incident_id":"inc-1","confirmed_by":"ana","time":"2026-11-27T09:00:00Z"}"#.to_vec(), "keys [confirmed_by, incident_id, time]"),
        ("cause with an empty service", br#"{"incident_id":"inc-1","service":"","time":"2026-11-27T09:00:00Z"}"#.to_vec(), "Devloom cause JSON: invalid at service: is empty"),
        ("OTLP bad trace id", span("checkout", "1", "2").replace("0af7651916cd43dd8448eb211c80319c", "xyz").into_bytes(), "traceId: odd number of digits"),
        ("OTLP end past 2262", span("checkout", "1", "18446744073709551615").into_bytes(), "out of range"),
        ("OTLP time not a number", span("checkout", "soon", "later").into_bytes(), "invalid digit found in string"),
        ("CloudEvent without data", br#"{"specversion":"1.0","type":"x","source":"y","id":"1"}"#.to_vec(), "the event carries no data"),
        ("line over the record limit", long.into_bytes(), "over the 2097152-byte limit"),
        ("far-future span", span("checkout", "4102444799000000000", "4102444800000000000").into_bytes(), "2100-01-01T00:00:00.000Z is"),
        ("far-past span", span("checkout", "978307200000000000", "978307200100000000").into_bytes(), "span ending 2001-01-01T00:00:00.100Z is"),
        ("far-future deploy", br#"{"service":"payments","revision":"v9","time":"2100-01-01T00:00:00Z"}"#.to_vec(), "2100-01-01T00:00:00.000Z is"),
    ]
}
