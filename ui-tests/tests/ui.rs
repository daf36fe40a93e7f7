//! The compile errors users see, as `tests/ui/*.stderr` holds them.

#[test]
fn preserve_context_names_the_alternative_where_it_cannot_go() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/preserve_context_on_a_trait_declaration.rs");
    cases.compile_fail("tests/ui/preserve_context_on_a_fn_that_is_not_async.rs");
}

#[test]
fn a_value_without_debug_points_to_context_var_opaque() {
    trybuild::TestCases::new().compile_fail("tests/ui/new_without_debug.rs");
}

#[test]
fn a_value_that_is_not_send_sync_is_refused_where_the_variable_is_declared() {
    trybuild::TestCases::new().compile_fail("tests/ui/value_not_send_sync.rs");
}

/// No attribute can add a hint to "no method named ..." (`#[diagnostic::on_unimplemented]` is for
/// unmet trait bounds): this pins the hint rustc itself gives, naming the import, which the
/// prelude (`use contextvars::prelude::*`) makes unnecessary.
#[test]
fn a_missing_context_ext_import_is_named_by_rustc() {
    trybuild::TestCases::new().compile_fail("tests/ui/missing_context_ext_import.rs");
}
