//! The one shape every operator has.

use devloom_schemas::TimestampNs;

/// A pure, deterministic event-time state machine.
///
/// `Ctx` is read-only state owned by another operator that this one consults (the
/// incident and blast-radius operators read the service graph); it is `()` for operators
/// that need nothing. Passing a reference keeps operators pure without copying the graph.
pub trait Operator {
    /// Input event.
    type In;
    /// Output event.
    type Out;
    /// Read-only context.
    type Ctx: ?Sized;
    /// Serializable state; [`Operator::restore`] is the inverse of [`Operator::snapshot`].
    type Snapshot;

    /// Handles one event, appending any outputs.
    fn on_event(&mut self, ctx: &Self::Ctx, event: &Self::In, out: &mut Vec<Self::Out>);

    /// Event time has advanced to `event_time`: expire, roll windows, flush.
    fn on_watermark(&mut self, ctx: &Self::Ctx, event_time: TimestampNs, out: &mut Vec<Self::Out>);

    /// The operator's whole state.
    fn snapshot(&self) -> Self::Snapshot;

    /// Replaces the operator's state with a snapshot.
    fn restore(&mut self, snapshot: Self::Snapshot);
}
