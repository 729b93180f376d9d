//! `testarena-worker`: the worker daemon's entry point.

fn main() {}
