//! `GET /v1/stream`: every output as Server-Sent Events, in publish order.
//!
//! Each event is `id: N`, `event: KIND` (impact, candidates, remediation, postmortem,
//! deadletter), `data: JSON`. A client that reconnects with `Last-Event-ID: N` (or
//! `?last_event_id=N`) first gets the events after N still in the buffer
//! (`[http] stream_buffer`); when some were already dropped, a `gap` event says which
//! ids were lost. The stream fans out from a bounded broadcast: a client that falls a
//! whole buffer behind is disconnected, never waited on, and resumes by reconnecting.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;

use super::state::{ApiState, StreamEvent};

fn sse(e: &StreamEvent) -> Event {
    Event::default().id(e.id.to_string()).event(e.event).data(&e.data)
}

/// The stream for a client that last saw `last_id`.
pub fn events(
    state: &ApiState,
    last_id: Option<u64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (backlog, gap, receiver) = state.subscribe(last_id);
    let mut seen = backlog.last().map(|e| e.id).or(last_id).unwrap_or(0);
    let gap = gap.map(|first| {
        Event::default()
            .event("gap")
            .data(format!(r#"{{"last_event_id":{},"resumed_at":{first}}}"#, last_id.unwrap_or(0)))
    });
    let head =
        stream::iter(gap.into_iter().chain(backlog.iter().map(|e| sse(e))).map(Ok).collect::<Vec<_>>());
    let live = stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(e) => Some((Some(e), receiver)),
            // Lagged a whole buffer behind: drop this client (it resumes from its last id).
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => None,
        }
    })
    .filter_map(move |e: Option<Arc<StreamEvent>>| {
        // The backlog and the receiver overlap by whatever was published in between.
        let fresh = e.filter(|e| e.id > seen).inspect(|e| seen = e.id);
        std::future::ready(fresh.map(|e| Ok(sse(&e))))
    });
    Sse::new(head.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
