//! `GET /v1/stream`: every output as Server-Sent Events, in publish order.
//!
//! Each event is `id: N`, `event: KIND` (impact, candidates, remediation, postmortem,
//! deadletter), `data: JSON`. A client that reconnects with `Last-Event-ID: N` (or
//! `?last_event_id=N`) first gets the events after N still in the buffer
//! (`[http] stream_buffer`); when some were already dropped, a `gap` event says which
//! ids were lost. The stream fans out from a bounded broadcast: a client that falls a
//! whole buffer behind is disconnected, never waited on, and resumes by reconnecting.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;

use super::state::{ApiState, StreamEvent};

fn sse(e: &StreamEvent) -> Event {
    Event::default().id(e.id.to_string()).event(e.event).data(&e.data)
}

/// The response for a client that last saw `last_id`, with a comment every 15 s so
/// proxies keep the connection open.
pub fn response(
    state: &ApiState,
    last_id: Option<u64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    Sse::new(events(state, last_id)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The events for a client that last saw `last_id`: the buffered ones after it, then
/// live ones until the client falls a whole buffer behind.
pub fn events(
    state: &ApiState,
    last_id: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    // The receiver starts right after the backlog: both are taken under the lock that
    // publishing holds, so nothing is missed or sent twice.
    let (backlog, gap, receiver) = state.subscribe(last_id);
    let gap = gap.map(|first| {
        Event::default()
            .event("gap")
            .data(format!(r#"{{"last_event_id":{},"resumed_at":{first}}}"#, last_id.unwrap_or(0)))
    });
    let head =
        stream::iter(gap.into_iter().chain(backlog.iter().map(|e| sse(e))).map(Ok).collect::<Vec<_>>());
    let live = stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(e) => Some((Ok(sse(&e)), receiver)),
            // Lagged a whole buffer behind: drop this client (it resumes from its last id).
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => None,
        }
    });
    head.chain(live)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use devloom_schemas::{CandidateList, IncidentStatus};

    use super::*;
    use crate::core::{Output, Sink};
    use crate::http::HttpConfig;
    use crate::http::state::ApiTap;

    fn list(version: u32) -> Output {
        Output::Candidates(CandidateList {
            schema_version: 1,
            incident_id: "inc-1".into(),
            version,
            status: IncidentStatus::Open,
            root_services: vec!["checkout".into()],
            onset_ns: 0,
            event_time_ns: 0,
            low_confidence: false,
            model: "m".into(),
            candidates: Vec::new(),
            published_at: None,
        })
    }

    #[test]
    fn a_client_a_whole_buffer_behind_is_dropped_and_publishing_never_waits() {
        let state = Arc::new(ApiState::new(
            HttpConfig { stream_buffer: 4, ..HttpConfig::default() },
            Default::default(),
        ));
        let mut tap = ApiTap(state.clone());
        tap.publish(&list(1)).unwrap();
        let slow = events(&state, None);
        // Ten more while the client reads nothing: the tap returns at once each time.
        (2..=11).for_each(|v| tap.publish(&list(v)).unwrap());
        let got: Vec<_> = futures_executor::block_on(slow.collect::<Vec<_>>());
        assert!(got.is_empty(), "dropped, not fed a gap: {} events", got.len());

        // Resuming after id 1: ids 2..7 are gone (the buffer keeps 4), so a gap event
        // then the four still buffered.
        let resumed = futures_executor::block_on(events(&state, Some(1)).take(5).collect::<Vec<_>>());
        assert_eq!(resumed.len(), 5);
        let (backlog, gap, _) = state.subscribe(Some(1));
        assert_eq!((backlog.iter().map(|e| e.id).collect::<Vec<_>>(), gap), (vec![8, 9, 10, 11], Some(8)));
    }
}
