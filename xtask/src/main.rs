//! `cargo xtask <command>`: everything a newcomer or CI runs, so nothing is done by hand.

mod bench;
mod cmd;
mod dist;
mod setup;
mod test;
mod vm;

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
    /// Build the release binary `<target dir>/release/pwru-rs` and print its path (runs setup
    /// first if needed; the target dir is cargo's, `CARGO_TARGET_DIR` included).
    Build,
    /// Build, then run pwru-rs with these arguments (as root, through sudo if needed).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole suite: fmt, clippy, unit tests, the root-only host integration tests, and the
    /// guest tests of the kprobe backends on stock 6.12 and 6.1 kernels.
    Test,
    /// Build, then run pwru-rs (or a script) in a QEMU guest booting a stock Debian kernel.
    Vm(vm::VmArgs),
    /// Benchmarks (host and QEMU guests); writes BENCH.md.
    Bench(bench::BenchArgs),
    /// One static pwru-rs for x86_64 in dist/ (stripped), with its SHA-256 and a VERSION file.
    Dist,
}

fn main() {
    let args = Args::parse();
    let result = match args.command {
        Command::Setup => setup::ensure(),
        Command::Build => setup::ensure()
            .and_then(|()| cmd::build_release())
            .map(|bin| println!("{}", bin.display())),
        Command::Run { args } => setup::ensure()
            .and_then(|()| cmd::build_release())
            .and_then(|bin| cmd::run_as_root(&bin, &args)),
        Command::Test => setup::ensure().and_then(|()| test::run()),
        Command::Vm(args) => setup::ensure().and_then(|()| vm::main(args)),
        Command::Bench(args) => setup::ensure().and_then(|()| bench::main(args)),
        Command::Dist => setup::ensure().and_then(|()| dist::run()).map(drop),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
