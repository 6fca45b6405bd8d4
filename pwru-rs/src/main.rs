use std::process::ExitCode;

use clap::Parser;
use pwru_rs::{cli::Cli, config::Config, session};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            use std::io::Write;
            match record.level() {
                log::Level::Info => writeln!(buf, "pwru-rs: {}", record.args()),
                level => writeln!(
                    buf,
                    "pwru-rs: {}: {}",
                    level.as_str().to_lowercase(),
                    record.args()
                ),
            }
        })
        .init();
    let cli = Cli::parse();
    match Config::from_cli(&cli).and_then(|config| session::run(&config)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the whole chain of causes.
            eprintln!("pwru-rs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
