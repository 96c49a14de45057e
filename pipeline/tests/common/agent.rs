//! The HTTP client of the tests that talk to a running server: a non-2xx status is an
//! answer to check, not an error, and nothing waits longer than 30 s.

use std::time::Duration;

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}
