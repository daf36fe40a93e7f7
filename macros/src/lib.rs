//! Procedural macros for [`contextvars`](https://docs.rs/contextvars). Use them through the
//! `contextvars` crate, which re-exports them and documents them with examples.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{
    parse_macro_input, parse_quote, FnArg, GenericParam, ItemFn, Lifetime, LifetimeParam, Pat,
    ReturnType, Type,
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
    let function = parse_macro_input!(item as ItemFn);
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
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
            "#[preserve_context] goes on an `async fn`",
        ));
    }
    if let Some(constness) = &signature.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "an `async fn` cannot be `const`",
        ));
    }
    signature.asyncness = None;

    // Name the elided lifetimes of the arguments and the receiver.
    let mut namer = NameElided { named: Vec::new() };
    for input in &mut signature.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                if let Some((_, lifetime @ None)) = &mut receiver.reference {
                    *lifetime = Some(namer.fresh(Span::call_site()));
                }
                if let Some((_, Some(lifetime))) = &mut receiver.reference {
                    namer.visit_lifetime_mut(lifetime);
                }
                let ty = &mut *receiver.ty;
                namer.visit_type_mut(ty);
            }
            FnArg::Typed(typed) => namer.visit_type_mut(&mut typed.ty),
        }
    }
    // A receiver's `ty` repeats its reference; keep both spellings in step.
    for input in &mut signature.inputs {
        if let FnArg::Receiver(receiver) = input {
            if let (Some((_, Some(lifetime))), Type::Reference(reference)) =
                (&receiver.reference, &mut *receiver.ty)
            {
                reference.lifetime = Some(lifetime.clone());
            }
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
