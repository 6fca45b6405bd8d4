//! pwru-rs: trace where packets go inside the Linux kernel.
//!
//! `main.rs` parses the command line, builds a [`config::Config`] and runs a [`session`].

pub mod asm;
pub mod backend;
pub mod btf;
pub mod cli;
pub mod config;
mod elf_write;
pub mod events;
pub mod expr;
pub mod fault;
pub mod filter;
pub mod ksym;
pub mod loader;
pub mod netns;
pub mod netns_names;
pub mod object;
pub mod output;
pub mod pod;
pub mod progress;
pub mod ready;
pub mod replay;
pub mod session;
pub mod version;

/// The test-only dataplane object built with the kernel programs
/// (`pwru-rs-ebpf/fixtures/dataplane.rs`: a tc and an XDP program that the tests attach with
/// iproute2, as a CNI would, for `--filter-trace-tc` / `--filter-trace-xdp`). Empty when built
/// with `PWRU_RS_SKIP_EBPF_BUILD`.
#[doc(hidden)]
pub const TEST_DATAPLANE_OBJECT: &str = concat!(env!("OUT_DIR"), "/test-dataplane.bpf.o");
