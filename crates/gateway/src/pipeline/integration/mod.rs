//! Step 4: calling the integration.

pub mod http;
pub mod mock;
