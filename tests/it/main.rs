//! One integration binary: in-process fakes in `support`, tests by feature.

mod support;

mod accounts_api;
mod activesync;
mod api_attacks;
mod api_errors;
mod api_flow;
mod batch;
mod browser;
pub mod cli;
mod consent;
pub mod diagnosis;
mod discovery;
mod horde;
mod horde_shapes;
mod hosted;
mod instances;
mod nylas_sdk;
mod oauth;
mod real_servers;
mod redirects;
mod redis_queue;
mod security;
mod shared_answers;
mod sogo;
pub mod store;
mod sync_check;
mod where_the_password_works;
