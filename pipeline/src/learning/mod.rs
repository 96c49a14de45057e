//! Offline work on the incident history: the scorer's model ([`model`]: which model a
//! run uses, past incidents), training ([`training`]), evaluation ([`evaluation`]) and
//! labelled cases run through the whole pipeline ([`cases`]).

pub mod cases;
pub mod evaluation;
pub mod model;
pub mod training;
