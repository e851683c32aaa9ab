//! Velocity Template Language engine for API Gateway mapping templates.
