//! pwru-rs: trace where packets go inside the Linux kernel.
//!
//! `main.rs` parses the command line, builds a [`config::Config`] and runs a [`session`].

pub mod asm;
pub mod backend;
pub mod btf;
pub mod cli;
pub mod config;
pub mod events;
pub mod filter;
pub mod ksym;
pub mod loader;
pub mod netns;
pub mod netns_names;
pub mod object;
pub mod output;
pub mod progress;
pub mod ready;
pub mod session;
pub mod version;
