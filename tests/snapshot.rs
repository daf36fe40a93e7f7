//! `Context` is an immutable snapshot; capture is O(1).

use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
static RETRIES: ContextVar<u8> = ContextVar::new("retries").with_default(|| 3);

#[test]
fn with_value_and_without_return_new_contexts() {
    let empty = Context::new();
    let one = empty.with_value(&REQUEST_ID, "a".to_string());
    let two = one.with_value(&USER_ID, 7);
    let replaced = two.with_value(&REQUEST_ID, "b".to_string());
    let removed = replaced.without(&REQUEST_ID);

    assert!(empty.is_empty());
    assert_eq!(
        (one.len(), two.len(), replaced.len(), removed.len()),
        (1, 2, 2, 1)
    );
    assert_eq!(one.get(&REQUEST_ID).as_deref(), Some("a"));
    assert_eq!(two.get(&REQUEST_ID).as_deref(), Some("a"));
    assert_eq!(replaced.get(&REQUEST_ID).as_deref(), Some("b"));
    assert_eq!(removed.get(&REQUEST_ID), None);
    assert_eq!(removed.get(&USER_ID), Some(7));
    assert_eq!(one.get(&USER_ID), None);
    // Removing what is not there shares the snapshot.
    assert!(one.without(&USER_ID).ptr_eq(&one));
}

#[test]
fn capture_is_the_same_snapshot_not_a_copy() {
    let ctx = Context::new().with_value(&USER_ID, 1);
    ctx.run(|| {
        let a = Context::current();
        let b = Context::current();
        assert!(a.ptr_eq(&b));
        assert!(a.ptr_eq(&ctx));
        // A set makes a new snapshot; captured ones keep their values.
        USER_ID.set(2);
        assert!(!Context::current().ptr_eq(&a));
        assert_eq!(a.get(&USER_ID), Some(1));
        assert_eq!(Context::current().get(&USER_ID), Some(2));
    });
}

#[test]
fn defaults_apply_when_unset_and_do_not_count_as_set() {
    let ctx = Context::new();
    assert_eq!(ctx.get(&RETRIES), Some(3));
    assert_eq!(ctx.get_ref(&RETRIES), None);
    assert!(!ctx.contains(&RETRIES));
    assert_eq!(RETRIES.with(|r| r.copied()), Some(3));
    RETRIES.scope(5, || {
        assert_eq!(RETRIES.get(), Some(5));
        assert!(RETRIES.is_set());
    });
}

#[test]
fn vars_with_the_same_name_and_type_never_collide() {
    static A: ContextVar<u32> = ContextVar::new("same");
    static B: ContextVar<u32> = ContextVar::new("same");
    let runtime_a: ContextVar<u32> = ContextVar::new("same");
    let runtime_b: ContextVar<u32> = ContextVar::new("same");
    let ctx = Context::new()
        .with_value(&A, 1)
        .with_value(&B, 2)
        .with_value(&runtime_a, 3)
        .with_value(&runtime_b, 4);
    assert_eq!(ctx.len(), 4);
    assert_eq!(
        [
            ctx.get(&A),
            ctx.get(&B),
            ctx.get(&runtime_a),
            ctx.get(&runtime_b)
        ],
        [Some(1), Some(2), Some(3), Some(4)]
    );
}

#[test]
fn many_vars_created_at_run_time() {
    let vars: Vec<ContextVar<usize>> = (0..2000).map(|_| ContextVar::new("v")).collect();
    let mut ctx = Context::new();
    for (i, var) in vars.iter().enumerate() {
        ctx = ctx.with_value(var, i);
    }
    assert_eq!(ctx.len(), vars.len());
    assert!(vars
        .iter()
        .enumerate()
        .all(|(i, var)| ctx.get(var) == Some(i)));
    for var in vars.iter().step_by(2) {
        ctx = ctx.without(var);
    }
    assert_eq!(ctx.len(), 1000);
    for (i, var) in vars.iter().enumerate() {
        assert_eq!(ctx.get(var), (i % 2 == 1).then_some(i));
    }
}

#[test]
fn debug_lists_names_and_iteration_sees_every_entry() {
    struct Secret;
    static KEY: ContextVar<Secret> = ContextVar::opaque("api_key");
    static SHOWN: ContextVar<String> = ContextVar::new("shown").with_display();

    let ctx = Context::new()
        .with_value(&REQUEST_ID, "r-1".to_string())
        .with_value(&KEY, Secret)
        .with_value(&SHOWN, "plain".to_string());
    let debug = format!("{ctx:?}");
    assert!(debug.contains(r#""request_id": "r-1""#), "{debug}");
    assert!(debug.contains(r#""api_key": <opaque>"#), "{debug}");

    let mut fields: Vec<(String, String, bool)> = ctx
        .iter()
        .map(|e| (e.name().to_string(), e.display().to_string(), e.has_debug()))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("api_key".into(), "<opaque>".into(), false),
            ("request_id".into(), "\"r-1\"".into(), true),
            ("shown".into(), "plain".into(), true),
        ]
    );
    assert_eq!(ctx.iter().len(), 3);
    let entry = ctx.iter().find(|e| e.is(&REQUEST_ID)).unwrap();
    assert_eq!(
        entry.value().downcast_ref::<String>().map(String::as_str),
        Some("r-1")
    );
}
