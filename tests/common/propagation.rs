//! The propagation most transport tests use: two baggage members and trust both ways, as
//! between one's own services (what changes for strangers is checked by `tests/trust.rs`).

use contextvars::propagation::{Propagation, PropagationBuilder, Trust};
use contextvars::ContextVar;

/// Baggage `tenant`.
pub(crate) static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
/// Baggage `user.id`, a number.
pub(crate) static USER_ID: ContextVar<u64> = ContextVar::new("user_id").with_display();

/// [`standard`] before `build`, for a variant of it.
pub(crate) fn standard_builder() -> PropagationBuilder {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage(&USER_ID, "user.id", |s| s.parse().ok())
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
}

/// `tenant` into [`TENANT`], `user.id` into [`USER_ID`] (a number); callers and destinations
/// trusted.
pub(crate) fn standard() -> Propagation {
    standard_builder().build()
}
