//! Turning raw measurements into committed results: the environment they
//! came from ([`env`]), SVG charts ([`charts`]), and the micro-benchmark
//! report ([`micro`]) built from criterion's and gungraun's output files.

pub mod charts;
pub mod env;
pub mod micro;
