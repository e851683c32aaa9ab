//! Step 4: calling the integration.

pub mod aws;
pub mod http;
pub mod lambda;
pub mod mock;
pub mod proxy_event;
