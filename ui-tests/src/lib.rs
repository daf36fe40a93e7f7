//! The compile errors that `contextvars` users see, checked with `trybuild` (`tests/ui.rs`):
//! kept apart from the crate so that the checks build against `contextvars` alone, not against
//! every dev-dependency of the crate.
//!
//! The expected messages are in `tests/ui/*.stderr`; after a deliberate change in a message,
//! `TRYBUILD=overwrite cargo test -p contextvars-ui-tests` writes them anew (review the diff).

#![forbid(unsafe_code)]
