//! `#[hoop::main]` and `#[hoop::test]`.
//!
//! Both turn an `async fn` into a plain function that builds a runtime and blocks on the body.
//! `#[hoop::test]` stamps the test once per driver — `name::io_uring` and `name::epoll` — so
//! every test checks both backends; `driver = "epoll"` (or `"io_uring"`) restricts it to one.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, MetaNameValue, Path, Token};

struct Options {
    workers: Option<Expr>,
    entries: Option<Expr>,
    driver: Option<String>,
    krate: Path,
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let mut opts = Options {
        workers: None,
        entries: None,
        driver: None,
        krate: syn::parse_quote!(::hoop),
    };
    let args = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse(attr)?;
    for arg in args {
        let name = arg
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let string_value = |e: &Expr| match e {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.value()),
            other => Err(syn::Error::new_spanned(other, "expected a string literal")),
        };
        match name.as_str() {
            "workers" => opts.workers = Some(arg.value),
            "entries" => opts.entries = Some(arg.value),
            "driver" => {
                let d = string_value(&arg.value)?;
                if !matches!(d.as_str(), "io_uring" | "epoll" | "auto") {
                    return Err(syn::Error::new_spanned(
                        &arg.value,
                        "driver must be \"io_uring\", \"epoll\" or \"auto\"",
                    ));
                }
                opts.driver = Some(d);
            }
            "crate" => opts.krate = syn::parse_str(&string_value(&arg.value)?)?,
            _ => {
                return Err(syn::Error::new_spanned(
                    &arg.path,
                    "unknown option: expected workers, entries, driver or crate",
                ))
            }
        }
    }
    Ok(opts)
}

fn driver_path(krate: &Path, name: &str) -> TokenStream2 {
    match name {
        "io_uring" => quote!(#krate::DriverChoice::IoUring),
        "epoll" => quote!(#krate::DriverChoice::Epoll),
        _ => quote!(#krate::DriverChoice::Auto),
    }
}

fn builder(opts: &Options, driver: TokenStream2) -> TokenStream2 {
    let krate = &opts.krate;
    // One worker unless asked: the body runs on worker 0, and workers it never uses would
    // each hold a ring and a thread for nothing.
    let workers = match &opts.workers {
        Some(w) => quote!(.workers(#w)),
        None => quote!(.workers(1)),
    };
    let entries = opts.entries.as_ref().map(|e| quote!(.entries(#e)));
    quote!(#krate::Runtime::builder() #workers #entries .driver(#driver))
}

fn check_async(f: &ItemFn) -> syn::Result<()> {
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            f.sig.fn_token,
            "the function must be `async fn`",
        ));
    }
    Ok(())
}

/// Runs an `async fn main` on a hoop runtime.
///
/// Options: `workers = N` (default 1), `entries = N` (SQ size), `driver = "auto" | "io_uring" |
/// "epoll"`, `crate = "path"` (where the runtime is, default `::hoop`).
///
/// The body runs on worker 0. With `workers = N` the other workers serve what is sent to them:
/// `Handle::current().spawn(fut)` (the least loaded worker), `spawn_on(i, fut)`, or one
/// `SO_REUSEPORT` listener per worker started with `spawn_on_with`.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_main(attr, item).unwrap_or_else(|e| e.to_compile_error().into())
}

fn expand_main(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts = parse_options(attr)?;
    let f: ItemFn = syn::parse(item)?;
    check_async(&f)?;
    let driver = driver_path(&opts.krate, opts.driver.as_deref().unwrap_or("auto"));
    let builder = builder(&opts, driver);
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = f;
    sig.asyncness = None;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let rt = #builder
                .build()
                .unwrap_or_else(|e| panic!("hoop: cannot start the runtime: {e}"));
            rt.block_on(async move #block)
        }
    }
    .into())
}

/// Runs an `async fn` test on a hoop runtime, once per driver (`name::io_uring`,
/// `name::epoll`).
///
/// Options as for `#[hoop::main]` (default one worker); `driver = "..."` runs only that one.
/// With `HOOP_DRIVER=epoll` (or `io_uring`) in the environment, the other driver's variant is
/// skipped, so a whole suite can be run on one backend.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_test(attr, item).unwrap_or_else(|e| e.to_compile_error().into())
}

fn expand_test(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut opts = parse_options(attr)?;
    if opts.workers.is_none() {
        opts.workers = Some(syn::parse_quote!(1));
    }
    let f: ItemFn = syn::parse(item)?;
    check_async(&f)?;
    let krate = opts.krate.clone();
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    let name = &sig.ident;
    let output = &sig.output;
    let drivers: Vec<&str> = match opts.driver.as_deref() {
        Some("auto") => vec!["auto"],
        Some(d) => vec![d],
        None => vec!["io_uring", "epoll"],
    };
    let variants = drivers.iter().map(|d| {
        let ident = format_ident!("{}", d, span = Span::call_site());
        let driver = driver_path(&krate, d);
        let builder = builder(&opts, driver.clone());
        quote! {
            #[test]
            #(#attrs)*
            fn #ident() #output {
                let Some(builder) = #krate::__private::test_builder(#builder) else {
                    return #krate::__private::Skipped::skipped();
                };
                let rt = builder
                    .build()
                    .unwrap_or_else(|e| panic!("hoop test: cannot start the {} runtime: {e}", #d));
                rt.block_on(body())
            }
        }
    });
    Ok(quote! {
        #[allow(non_snake_case)]
        #vis mod #name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() #output #block

            #(#variants)*
        }
    }
    .into())
}
