//! Who may post to a receiver: a bearer token (`Authorization: Bearer …`, which
//! Alertmanager's `http_config.authorization`, Argo CD's webhook `headers` and OTLP
//! exporters' `headers` all send), or the producer's HMAC-SHA256 signature of the raw
//! body: GitHub's `X-Hub-Signature-256: sha256=<hex>`, PagerDuty's
//! `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` (several while a secret rotates).
//! Signatures are compared in constant time.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::{Receiver, ReceiverAuth};

/// Why a request was refused (answered 401).
#[derive(Debug, PartialEq, Eq)]
pub struct Denied(pub String);

/// Checks `headers` and `body` against what `receiver` requires.
pub fn check(
    receiver: Receiver,
    auth: &ReceiverAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Denied> {
    if let Some(token) = &auth.token {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| {
                Denied(format!("{}: this receiver requires Authorization: Bearer <token>", receiver.route()))
            })?;
        // Digests of both, compared: equal length, nothing learned from timing.
        if Sha256::digest(sent.trim().as_bytes()) != Sha256::digest(token.as_bytes()) {
            return Err(Denied(format!("{}: the bearer token is not this receiver's", receiver.route())));
        }
    }
    let Some(secret) = &auth.secret else { return Ok(()) };
    let (header, prefix) = match receiver {
        Receiver::Github => ("x-hub-signature-256", "sha256="),
        _ => ("x-pagerduty-signature", "v1="),
    };
    let sent = headers.get(header).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Denied(format!("{}: a secret is configured but the request has no {header}", receiver.route()))
    })?;
    let signed = sent.split(',').filter_map(|s| s.trim().strip_prefix(prefix)).any(|hex| {
        let Ok(signature) = const_hex::decode(hex) else { return false };
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if signed {
        Ok(())
    } else {
        Err(Denied(format!(
            "{}: {header} does not match the body signed with the configured secret",
            receiver.route()
        )))
    }
}

/// `body` signed with `secret` as `receiver`'s producer would sign it (tests and
/// `devloom` clients of the receivers).
pub fn sign(receiver: Receiver, secret: &str, body: &[u8]) -> (&'static str, String) {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let hex = const_hex::encode(mac.finalize().into_bytes());
    match receiver {
        Receiver::Github => ("X-Hub-Signature-256", format!("sha256={hex}")),
        _ => ("X-PagerDuty-Signature", format!("v1={hex}")),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// GitHub's documented test vector: secret "It's a Secret to Everybody", payload
    /// "Hello, World!".
    #[test]
    fn github_signatures_as_github_documents_them() {
        let auth = ReceiverAuth { token: None, secret: Some("It's a Secret to Everybody".into()) };
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(Receiver::Github, "It's a Secret to Everybody", b"Hello, World!").1, good);
        let h = headers(&[("x-hub-signature-256", good)]);
        assert_eq!(check(Receiver::Github, &auth, &h, b"Hello, World!"), Ok(()));
        assert!(check(Receiver::Github, &auth, &h, b"Hello, World?").is_err(), "another body");
        let err = check(Receiver::Github, &auth, &HeaderMap::new(), b"Hello, World!").unwrap_err();
        assert_eq!(
            err.0,
            "/v1/receivers/github: a secret is configured but the request has no x-hub-signature-256"
        );
    }

    #[test]
    fn pagerduty_takes_any_of_several_signatures_while_a_secret_rotates() {
        let auth = ReceiverAuth { token: None, secret: Some("new".into()) };
        let (_, old) = sign(Receiver::Pagerduty, "old", b"{}");
        let (_, new) = sign(Receiver::Pagerduty, "new", b"{}");
        assert_eq!(
            check(
                Receiver::Pagerduty,
                &auth,
                &headers(&[("x-pagerduty-signature", &format!("{old},{new}"))]),
                b"{}"
            ),
            Ok(())
        );
        assert!(
            check(Receiver::Pagerduty, &auth, &headers(&[("x-pagerduty-signature", &old)]), b"{}").is_err()
        );
    }

    #[test]
    fn bearer_tokens() {
        let auth = ReceiverAuth { token: Some("s3cret".into()), secret: None };
        assert_eq!(
            check(Receiver::Otlp, &auth, &headers(&[("authorization", "Bearer s3cret")]), b""),
            Ok(())
        );
        assert!(check(Receiver::Otlp, &auth, &headers(&[("authorization", "Bearer s3cre")]), b"").is_err());
        let err = check(Receiver::Alertmanager, &auth, &HeaderMap::new(), b"").unwrap_err();
        assert_eq!(err.0, "/v1/receivers/alertmanager: this receiver requires Authorization: Bearer <token>");
        assert_eq!(
            check(Receiver::Otlp, &ReceiverAuth::default(), &HeaderMap::new(), b""),
            Ok(()),
            "nothing asked"
        );
    }
}
