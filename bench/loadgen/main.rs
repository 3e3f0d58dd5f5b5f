//! gatehouse-loadgen: placeholder, being written.
fn main() {}
