use std::process::ExitCode;

use clap::Parser;
use pwru_rs::{cli::Cli, config::Config, replay, session, version};

// The static build's stand-ins for libpcap's D-Bus module: in the binary crate, whose objects
// are always linked (an rlib's are taken only for symbols asked for before it).
#[cfg(target_feature = "crt-static")]
mod static_pcap;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help
        // Bad input is one line, as every other error, and exit status 1.
        Err(e) => {
            // clap's first paragraph (the message and what it lists), without the usage.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("pwru-rs: error: {message} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if cli.debug {
        // As RUST_LOG=debug, whatever RUST_LOG says.
        logger.parse_filters("debug");
    }
    logger
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
    // A bug is one line too, and unwinds: what is attached is detached on the way out.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        eprintln!("pwru-rs: error: internal error (a bug, please report it): {message}{location}");
    }));
    if cli.version {
        print!("{}", version::report());
        return ExitCode::SUCCESS;
    }
    let result = if cli.input_file.is_some() {
        replay::run(&cli).map(drop)
    } else {
        Config::from_cli(&cli).and_then(|config| session::run(&config).map(drop))
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the whole chain of causes.
            eprintln!("pwru-rs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
