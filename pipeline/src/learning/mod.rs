//! Offline work on the incident history: the scorer's model ([`model`]: which model a
//! run uses, past incidents), training ([`training`]) and evaluation ([`evaluation`]).

pub mod evaluation;
pub mod model;
pub mod training;
