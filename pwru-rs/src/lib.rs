//! pwru-rs: trace where packets go inside the Linux kernel.
//!
//! `main.rs` only parses the command line and calls [`trace::run`].

pub mod backend;
pub mod btf;
pub mod cli;
pub mod events;
pub mod filter;
pub mod ksym;
pub mod loader;
pub mod netns;
pub mod output;
pub mod progress;
pub mod ready;
pub mod trace;
