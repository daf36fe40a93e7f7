//! What a [`Propagation`](super::Propagation) sends to a destination or accepts from a caller,
//! and why: [`Explanation`].

use std::fmt;

use super::Trust;

/// Which way an [`Explanation`] looks: what is written for a destination, or read from a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// What [`Propagation::inject`](super::Propagation::inject) writes.
    Outbound,
    /// What [`Propagation::extract`](super::Propagation::extract) reads.
    Inbound,
}

/// What a [`Decision`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// The request id header.
    RequestId,
    /// A baggage member (a registered variable's key, or a forwarded member).
    Baggage,
    /// W3C Trace Context (`traceparent` and `tracestate`).
    TraceContext,
}

/// One line of an [`Explanation`]: whether something goes through, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// What it is about.
    pub part: Part,
    /// The header or baggage key.
    pub name: String,
    /// Whether it is sent (outbound) or accepted (inbound).
    pub passes: bool,
    /// Whether the trust of the other side decided it (rather than bad input or the
    /// configuration alone).
    pub by_trust: bool,
    /// Why, in words.
    pub reason: &'static str,
}

/// What a [`Propagation`](super::Propagation) (or an integration's layer, with its per-request
/// trust rules) would send to a destination or accept from a caller, and why: the answer of
/// [`Propagation::explain_outbound`](super::Propagation::explain_outbound),
/// [`Propagation::explain_inbound`](super::Propagation::explain_inbound) and the layers'
/// `explain` methods. For tests and for debugging a chain that loses its id or baggage.
///
/// Its `Display` is one line for the trust and one per decision:
///
/// ```
/// use contextvars::propagation::{Propagation, Trust};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant");
///
/// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
/// let explanation = TENANT.scope("acme".into(), || propagation.explain_outbound(Trust::Untrusted));
/// assert_eq!(explanation.held_back(), ["tenant"]);
/// assert_eq!(
///     explanation.to_string(),
///     "outbound to an untrusted destination (as asked)\n  \
///      withheld  baggage `tenant`: private (not made public): sent to trusted destinations only",
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// Outbound or inbound.
    pub direction: Direction,
    /// The trust the other side gets.
    pub trust: Trust,
    /// Why it gets that trust (`as asked`, `host 127.0.0.1 matches none of ["localhost"]`).
    pub why: String,
    /// What goes through and what does not, in the order the propagation decides it.
    pub decisions: Vec<Decision>,
}

impl Explanation {
    pub(crate) fn new(direction: Direction, trust: Trust, why: impl Into<String>) -> Explanation {
        Explanation {
            direction,
            trust,
            why: why.into(),
            decisions: Vec::new(),
        }
    }

    /// The names of what goes through (sent, or accepted), in order.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    ///
    /// let explanation = REQUEST_ID.scope("req-1".into(), || {
    ///     Propagation::default().explain_outbound(Trust::Untrusted)
    /// });
    /// assert_eq!(explanation.passed(), ["x-request-id"]);
    /// ```
    pub fn passed(&self) -> Vec<&str> {
        self.names(true)
    }

    /// The names of what does not go through (withheld, or set aside), in order.
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("x-request-id".to_string(), "theirs".to_string())]);
    /// let explanation = Propagation::default().explain_inbound(&headers);
    /// assert_eq!(explanation.held_back(), ["x-request-id"]);
    /// ```
    pub fn held_back(&self) -> Vec<&str> {
        self.names(false)
    }

    /// The decision about `name` (a header or a baggage key), if there is one.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    ///
    /// let explanation = Propagation::default().explain_outbound(Trust::Trusted);
    /// assert_eq!(explanation.decision("tenant"), None);
    /// ```
    pub fn decision(&self, name: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.name == name)
    }

    fn names(&self, passes: bool) -> Vec<&str> {
        let decisions = self.decisions.iter().filter(|d| d.passes == passes);
        decisions.map(|d| d.name.as_str()).collect()
    }

    /// What the trust of the other side held back, on one line: the body of a diagnostic.
    pub(crate) fn held_back_by_trust(&self, part: Part) -> String {
        let held = self.decisions.iter();
        let held = held.filter(|d| d.part == part && !d.passes && d.by_trust);
        let held: Vec<String> = held.map(|d| format!("{} ({})", d.name, d.reason)).collect();
        held.join(", ")
    }

    pub(crate) fn push(&mut self, decision: Decision) {
        self.decisions.push(decision);
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (way, side, verbs) = match self.direction {
            Direction::Outbound => ("outbound to", "destination", ["sent", "withheld"]),
            Direction::Inbound => ("inbound from", "caller", ["accepted", "set aside"]),
        };
        let trust = match self.trust {
            Trust::Trusted => "a trusted",
            Trust::Untrusted => "an untrusted",
        };
        write!(f, "{way} {trust} {side} ({})", self.why)?;
        for d in &self.decisions {
            let verb = verbs[usize::from(!d.passes)];
            let part = match d.part {
                Part::RequestId => "request id",
                Part::Baggage => "baggage",
                Part::TraceContext => "trace context",
            };
            write!(f, "\n  {verb:<9} {part} `{}`: {}", d.name, d.reason)?;
        }
        Ok(())
    }
}

/// What `read` and the baggage writer tell as they decide: nothing, a few flags for the
/// diagnostics, or every decision for an [`Explanation`].
pub(crate) trait Notes {
    /// Whether to look for what would be withheld that costs a lookup to find (a private
    /// variable that is set): only when someone will read it.
    fn looking(&self) -> bool;
    fn note(&mut self, part: Part, name: &str, passes: bool, by_trust: bool, reason: &'static str);
}

impl Notes for Explanation {
    fn looking(&self) -> bool {
        true
    }

    fn note(&mut self, part: Part, name: &str, passes: bool, by_trust: bool, reason: &'static str) {
        self.push(Decision {
            part,
            name: name.to_owned(),
            passes,
            by_trust,
            reason,
        });
    }
}

/// Which parts the other side's trust held back: what decides whether to report.
#[derive(Default)]
pub(crate) struct Flags {
    /// Whether a diagnostic sink takes reports (so lookups are worth it).
    pub(crate) looking: bool,
    pub(crate) request_id: bool,
    pub(crate) baggage: bool,
}

impl Notes for Flags {
    #[inline]
    fn looking(&self) -> bool {
        self.looking
    }

    #[inline]
    fn note(&mut self, part: Part, _: &str, passes: bool, by_trust: bool, _: &'static str) {
        if !passes && by_trust {
            match part {
                Part::RequestId => self.request_id = true,
                Part::Baggage => self.baggage = true,
                Part::TraceContext => {}
            }
        }
    }
}
