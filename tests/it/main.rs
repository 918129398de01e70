//! One integration binary: in-process fakes in `support`, tests by feature.

mod support;

mod activesync;
mod cli;
mod discovery;
mod redirects;
mod security;
mod sogo;
