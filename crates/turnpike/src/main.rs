//! `turnpike`: serve API Gateway definitions locally, exactly as AWS would.

/// `println!` / `eprintln!` / `print!` that do not panic when the stream is gone: a server
/// whose output pipe was closed (`turnpike serve | head`) goes on serving, and a stop signal
/// still stops it.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}

mod allocator;
mod keys;
mod render;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The request path allocates small, short-lived objects on every request; mimalloc's
/// per-thread free lists serve them faster than glibc malloc (see bench/README.md).
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

#[derive(Parser)]
#[command(
    name = "turnpike",
    version,
    about = "A self-hosted API gateway that behaves like Amazon API Gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a project file (turnpike.yaml) or an OpenAPI/Swagger definition.
    Serve(serve::ServeArgs),
    /// Check a project file or definition and list every error and unsupported feature.
    Validate {
        /// Project file or OpenAPI/Swagger definition (JSON or YAML).
        file: PathBuf,
        /// Stage to create for a bare OpenAPI definition.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Render a mapping template against a request, like the console's test invoke.
    Render(render::RenderArgs),
    /// Manage API keys in the data directory (create, list, disable, enable, delete).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Requests per API key and day, like API Gateway's GetUsage.
    Usage(keys::UsageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TURNPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Validate { file, stage } => serve::validate(&file, stage),
        Command::Render(args) => render::run(args),
        Command::Keys(cmd) => keys::keys(cmd),
        Command::Usage(args) => keys::usage(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
