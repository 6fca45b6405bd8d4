//! `cargo xtask <command>`: everything a newcomer or CI runs, so nothing is done by hand.

mod cmd;
mod setup;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "pwru-rs development tasks")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building pwru-rs needs (apt packages, bpf-linker); does nothing if present.
    Setup,
    /// Build the release binary `target/release/pwru-rs` (runs setup first if needed).
    Build,
    /// Build, then run pwru-rs with these arguments (as root, through sudo if needed).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole suite: fmt, clippy, unit tests and the root-only integration tests.
    Test,
}

fn main() {
    let args = Args::parse();
    let result = match args.command {
        Command::Setup => setup::ensure(),
        Command::Build => setup::ensure()
            .and_then(|()| cmd::build_release())
            .map(drop),
        Command::Run { args } => setup::ensure()
            .and_then(|()| cmd::build_release())
            .and_then(|bin| cmd::run_as_root(&bin, &args)),
        Command::Test => setup::ensure().and_then(|()| test::run()),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
