//! The bad-input rows of the propagation rules, shared by every server integration (the tower
//! layer, the actix-web middleware): each row is a request's headers, the configuration to read
//! them with, and what the handler and the response must show. A server test sends every row
//! through its own stack, with a handler that answers [`handler_body`], and calls [`Row::check`].

use contextvars::propagation::{Baggage, Propagation, Trust, REQUEST_ID};

use super::propagation::{standard, standard_builder, TENANT, USER_ID};

/// Which configuration a row is read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Config {
    /// `tenant` into `TENANT`, `user.id` into `USER_ID` (a number).
    Standard,
    /// The standard one with request ids of at most 4 bytes.
    ShortIds,
    /// `tenant` parsed as a number into `USER_ID`, nothing else registered.
    NumericTenant,
    /// The standard one, with a request id generator that gives none.
    GeneratorGivesNone,
    /// The standard one, with a request id generator that gives `not valid` (has a space).
    GeneratorGivesInvalid,
}

/// What a server's request id generator does for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Generator {
    /// The integration's default generator.
    Default,
    /// Gives no id.
    Nothing,
    /// Gives `not valid`.
    Invalid,
}

impl Config {
    pub(crate) const ALL: [Config; 5] = [
        Config::Standard,
        Config::ShortIds,
        Config::NumericTenant,
        Config::GeneratorGivesNone,
        Config::GeneratorGivesInvalid,
    ];

    pub(crate) fn generator(self) -> Generator {
        match self {
            Config::GeneratorGivesNone => Generator::Nothing,
            Config::GeneratorGivesInvalid => Generator::Invalid,
            _ => Generator::Default,
        }
    }

    pub(crate) fn propagation(self) -> Propagation {
        match self {
            Config::Standard | Config::GeneratorGivesNone | Config::GeneratorGivesInvalid => {
                standard()
            }
            Config::ShortIds => standard_builder().max_request_id_len(4).build(),
            Config::NumericTenant => Propagation::builder()
                .baggage(&USER_ID, "tenant", |s| s.parse().ok())
                .inbound(Trust::Trusted)
                .outbound(Trust::Trusted)
                .build(),
        }
    }
}

/// What the handler answers: `request id|tenant|user id|forwarded baggage`.
pub(crate) fn handler_body() -> String {
    format!(
        "{:?}|{:?}|{:?}|{}",
        REQUEST_ID.get(),
        TENANT.get(),
        USER_ID.get(),
        Baggage::forwarded()
    )
}

/// What a row expects.
#[derive(Debug)]
pub(crate) enum Expect {
    /// A generated id (32 hex digits) in the handler and on the response, never the one sent.
    Generated,
    /// This id in the handler and on the response.
    Echoed(String),
    /// No request id in the handler, and none on the response.
    NoId,
    /// Exactly this handler body (the id sent was `r`, and is echoed).
    Body(String),
    /// The id `r` echoed; the forwarded baggage, parsed, satisfies the function.
    Forwarded {
        prefix: &'static str,
        check: fn(&Baggage),
    },
}

/// One request and its expected outcome.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) config: Config,
    pub(crate) headers: Vec<(&'static str, Vec<u8>)>,
    pub(crate) expect: Expect,
}

impl Row {
    /// Checks what the server answered: the response's request id header and the body.
    #[track_caller]
    pub(crate) fn check(&self, echoed: Option<&[u8]>, body: &str) {
        let name = self.name;
        match &self.expect {
            Expect::Generated => {
                let id = std::str::from_utf8(echoed.expect(name)).expect(name);
                assert_eq!(id.len(), 32, "{name}: {id}");
                assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{name}: {id}");
                assert!(
                    body.starts_with(&format!("Some({id:?})|")),
                    "{name}: {body}"
                );
                for (header, value) in &self.headers {
                    if *header == "x-request-id" {
                        assert_ne!(id.as_bytes(), value.as_slice(), "{name}");
                    }
                }
            }
            Expect::Echoed(id) => {
                assert_eq!(echoed, Some(id.as_bytes()), "{name}");
                assert!(
                    body.starts_with(&format!("Some({id:?})|")),
                    "{name}: {body}"
                );
            }
            Expect::NoId => {
                assert_eq!(echoed, None, "{name}");
                assert!(body.starts_with("None|"), "{name}: {body}");
            }
            Expect::Body(expected) => {
                assert_eq!(echoed, Some(&b"r"[..]), "{name}");
                assert_eq!(body, expected, "{name}");
            }
            Expect::Forwarded { prefix, check } => {
                assert_eq!(echoed, Some(&b"r"[..]), "{name}");
                assert!(body.starts_with(prefix), "{name}: {body}");
                check(&Baggage::parse(body.rsplit('|').next().unwrap()));
            }
        }
    }
}

fn id(value: impl Into<Vec<u8>>) -> (&'static str, Vec<u8>) {
    ("x-request-id", value.into())
}

fn baggage(value: impl Into<Vec<u8>>) -> (&'static str, Vec<u8>) {
    ("baggage", value.into())
}

fn body(text: &str) -> Expect {
    Expect::Body(text.to_owned())
}

/// Every bad-input row, in the order of the `tower` module's "Bad input" table.
pub(crate) fn rows() -> Vec<Row> {
    use Config::*;
    let row = |name, config, headers, expect| Row {
        name,
        config,
        headers,
        expect,
    };
    let r = || id("r");
    vec![
        // Request ids.
        row("id missing", Standard, vec![], Expect::Generated),
        row("id empty", Standard, vec![id("")], Expect::Generated),
        row(
            "id over 128 bytes",
            Standard,
            vec![id("x".repeat(129))],
            Expect::Generated,
        ),
        row(
            "id with a space",
            Standard,
            vec![id("has space")],
            Expect::Generated,
        ),
        row(
            "id not ASCII",
            Standard,
            vec![id(&b"caf\xc3\xa9"[..])],
            Expect::Generated,
        ),
        row(
            "id not UTF-8",
            Standard,
            vec![id(&b"\xff\xfe"[..])],
            Expect::Generated,
        ),
        row(
            "id of exactly 128 bytes",
            Standard,
            vec![id("y".repeat(128))],
            Expect::Echoed("y".repeat(128)),
        ),
        row(
            "id over a configured limit",
            ShortIds,
            vec![id("12345")],
            Expect::Generated,
        ),
        row(
            "several ids: the first wins",
            Standard,
            vec![id("first"), id("second")],
            Expect::Echoed("first".into()),
        ),
        row(
            "several ids, the first bad: all replaced",
            Standard,
            vec![id("bad one"), id("second")],
            Expect::Generated,
        ),
        row(
            "the generator gives no id",
            GeneratorGivesNone,
            vec![],
            Expect::NoId,
        ),
        row(
            "the generator gives an invalid id",
            GeneratorGivesInvalid,
            vec![id("bad id")],
            Expect::NoId,
        ),
        // Baggage.
        row(
            "malformed members among good ones",
            Standard,
            vec![
                r(),
                baggage("tenant=acme, nokey, =v, bad key=1, k=a\"b, p=%G1, r=1;bad prop, s=ok"),
            ],
            body(r#"Some("r")|Some("acme")|None|s=ok"#),
        ),
        row(
            "escapes decoding to invalid UTF-8",
            Standard,
            vec![r(), baggage("q=%FF,tenant=a%FFb")],
            body("Some(\"r\")|Some(\"a\u{FFFD}b\")|None|q=%FF"),
        ),
        row(
            "a registered member that does not parse",
            Standard,
            vec![r(), baggage("user.id=forty-two,tenant=t")],
            body(r#"Some("r")|Some("t")|None|"#),
        ),
        row(
            "duplicates: the last wins",
            Standard,
            vec![r(), baggage("user.id=1,x=a,user.id=2,x=b")],
            body(r#"Some("r")|None|Some(2)|x=b"#),
        ),
        row(
            "a non-UTF-8 line is ignored whole",
            Standard,
            vec![
                r(),
                baggage("tenant=one"),
                baggage(&b"x=\xc3\xa9,y=2"[..]),
                baggage("user.id=7"),
            ],
            body(r#"Some("r")|Some("one")|Some(7)|"#),
        ),
        row(
            "empty members and optional whitespace",
            Standard,
            vec![r(), baggage(" , ,tenant = spaced ,\t, x=1 ;  p ,")],
            body(r#"Some("r")|Some("spaced")|None|x=1;p"#),
        ),
        row(
            "a malformed property or a dangling ;",
            Standard,
            vec![r(), baggage("a=1;,b=2; ,c=3;;p,d=4;q")],
            body(r#"Some("r")|None|None|d=4;q"#),
        ),
        row(
            "over 8,192 bytes",
            Standard,
            vec![
                r(),
                baggage(format!("tenant=a,x={},user.id=3", "v".repeat(9000))),
            ],
            body(r#"Some("r")|Some("a")|None|"#),
        ),
        row(
            "over 64 members",
            Standard,
            vec![
                r(),
                baggage(
                    (0..100)
                        .map(|i| format!("m{i}={i}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ],
            Expect::Forwarded {
                prefix: r#"Some("r")|None|None|"#,
                check: |forwarded| {
                    assert_eq!(forwarded.len(), 64);
                    assert_eq!(forwarded.get("m63"), Some("63"));
                    assert_eq!(forwarded.get("m64"), None);
                },
            },
        ),
        // The member limit counts distinct accepted keys.
        row(
            "rejected registered members do not count",
            NumericTenant,
            vec![
                r(),
                baggage(format!("{},other=kept", vec!["tenant=bad"; 70].join(","))),
            ],
            body(r#"Some("r")|None|None|other=kept"#),
        ),
        row(
            "the last value that parses wins",
            NumericTenant,
            vec![r(), baggage("tenant=5,tenant=7")],
            body(r#"Some("r")|None|Some(7)|"#),
        ),
        row(
            "a value that does not parse leaves the earlier one",
            NumericTenant,
            vec![r(), baggage("tenant=5,tenant=bad")],
            body(r#"Some("r")|None|Some(5)|"#),
        ),
        row(
            "duplicates of accepted keys replace after the limit; new keys are dropped",
            NumericTenant,
            vec![
                r(),
                baggage(format!(
                    "tenant=1,m0=a,tenant=2,m0=b,{},tenant=3,m0=c,new=x",
                    (1..63)
                        .map(|i| format!("m{i}={i}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ],
            Expect::Forwarded {
                prefix: r#"Some("r")|None|Some(3)|"#,
                check: |forwarded| {
                    assert_eq!(forwarded.len(), 63);
                    assert_eq!(forwarded.get("m0"), Some("c"));
                    assert_eq!(forwarded.get("m62"), Some("62"));
                    assert_eq!(forwarded.get("new"), None);
                },
            },
        ),
        row(
            "forwarded members follow the rules of Baggage::parse",
            NumericTenant,
            vec![r(), baggage(forwarded_only())],
            Expect::Forwarded {
                prefix: r#"Some("r")|None|None|"#,
                check: |forwarded| {
                    assert_eq!(*forwarded, Baggage::parse(&forwarded_only()));
                    assert_eq!(forwarded.get("k0"), Some("b"));
                    assert_eq!(forwarded.get("k64"), None);
                },
            },
        ),
    ]
}

fn forwarded_only() -> String {
    let members: Vec<String> = (0..64).map(|i| format!("k{i}=v")).collect();
    format!("{},k0=b,k64=x", members.join(","))
}
