//! Turnpike data plane.
