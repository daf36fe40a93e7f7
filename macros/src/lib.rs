//! Procedural macros for [`contextvars`](https://docs.rs/contextvars). Use them through the
//! `contextvars` crate, which re-exports them and documents them with examples.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{
    parse_quote, FnArg, GenericParam, ItemFn, Lifetime, LifetimeParam, Pat, ReturnType,
    TraitItemFn, Type,
};

/// Makes an `async fn` carry the context of its call site; see `contextvars::preserve_context`.
#[proc_macro_attribute]
pub fn preserve_context(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::TokenStream::from(attr)
                .into_iter()
                .next()
                .map_or_else(Span::call_site, |t| t.span()),
            "#[preserve_context] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let function = match syn::parse::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(error) => return not_a_function(item, error).to_compile_error().into(),
    };
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The error for an item that is not a function with a body, naming the alternative when it is a
/// method declared in a trait without one.
fn not_a_function(item: TokenStream, error: syn::Error) -> syn::Error {
    match syn::parse::<TraitItemFn>(item) {
        Ok(declaration) if declaration.default.is_none() => syn::Error::new_spanned(
            &declaration.sig,
            "#[preserve_context] needs the method's body, and a trait's declaration has none: \
             put #[preserve_context] on the method in each `impl Trait for Type` block instead \
             (or on a default body written in the trait)",
        ),
        _ => error,
    }
}

/// Names every elided lifetime in the signature (`&T`, `&self`, `'_`), so the returned
/// `impl Future` can be declared to capture them.
struct NameElided {
    named: Vec<Lifetime>,
}

impl NameElided {
    fn fresh(&mut self, span: Span) -> Lifetime {
        let lifetime = Lifetime::new(&format!("'__contextvars{}", self.named.len()), span);
        self.named.push(lifetime.clone());
        lifetime
    }
}

impl VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.fresh(reference.and_token.span));
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.fresh(lifetime.span());
        }
    }

    // Lifetimes inside `fn(&T)` pointers and `dyn Fn(&T)` bounds are their own, not the item's.
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

fn expand(mut function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let signature = &mut function.sig;
    if signature.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            signature.fn_token,
            "#[preserve_context] goes on an `async fn`; a `fn` that returns a future can return \
             `future.with_current_context()` (`contextvars::ContextExt`) instead",
        ));
    }
    if let Some(constness) = &signature.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "an `async fn` cannot be `const`",
        ));
    }
    signature.asyncness = None;

    // Name the elided lifetimes of the arguments and the receiver, each once: the lifetime
    // parameters must match the elided ones one for one, or a trait impl's method no longer
    // matches the trait's declaration.
    let mut namer = NameElided { named: Vec::new() };
    for input in &mut signature.inputs {
        match input {
            FnArg::Receiver(receiver) => match &mut receiver.reference {
                // `&self`, `&'a self`, `&mut self`: `ty` repeats the reference (`&Self`); name
                // the lifetime once and keep both spellings in step.
                Some((_, lifetime)) => {
                    let named = match lifetime.take() {
                        None => namer.fresh(Span::call_site()),
                        Some(mut explicit) => {
                            namer.visit_lifetime_mut(&mut explicit);
                            explicit
                        }
                    };
                    *lifetime = Some(named.clone());
                    if let Type::Reference(reference) = &mut *receiver.ty {
                        reference.lifetime = Some(named);
                        namer.visit_type_mut(&mut reference.elem);
                    }
                }
                // `self`, `mut self`, `self: Box<Self>`, `self: &Self`, `self: Pin<&mut Self>`.
                None => namer.visit_type_mut(&mut receiver.ty),
            },
            FnArg::Typed(typed) => namer.visit_type_mut(&mut typed.ty),
        }
    }
    for lifetime in &namer.named {
        signature
            .generics
            .params
            .push(GenericParam::Lifetime(LifetimeParam::new(lifetime.clone())));
    }
    let lifetimes: Vec<Lifetime> = signature
        .generics
        .lifetimes()
        .map(|param| param.lifetime.clone())
        .collect();

    let output = match &signature.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let annotate = match &signature.output {
        // `let value: impl Trait` is not allowed; let inference do it then.
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => None,
        _ => Some(output.clone()),
    };
    signature.output = parse_quote! {
        -> impl ::core::future::Future<Output = #output>
            #( + ::contextvars::__private::Captures<#lifetimes> )*
    };

    // Move every argument into the future, as an `async fn` does, even ones the body never uses
    // (they must live, and drop, with the future). `mut` moves inside with them.
    let mut rebind = Vec::new();
    for input in &mut signature.inputs {
        match input {
            FnArg::Receiver(_) => rebind.push(quote!(let _ = &self;)),
            FnArg::Typed(typed) => {
                if let Pat::Ident(binding) = &mut *typed.pat {
                    let ident = &binding.ident;
                    if binding.by_ref.is_none() && binding.subpat.is_none() {
                        let mutability = binding.mutability.take();
                        rebind.push(quote!(let #mutability #ident = #ident;));
                    }
                }
            }
        }
    }

    let body = &function.block;
    let body = match annotate {
        Some(output) => quote! {
            let __contextvars_output: #output = #body;
            #[allow(unreachable_code)]
            __contextvars_output
        },
        None => quote!(#body),
    };
    function.block = parse_quote! {{
        ::contextvars::__private::preserve(async move {
            #(#rebind)*
            #body
        })
    }};
    Ok(quote!(#function))
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}
