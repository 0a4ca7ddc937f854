//! The `mailroom` binary: parses the command line, sets up logging, runs
//! the command and turns its error into one sentence and an exit code.

use clap::Parser;
use mailroom::cli::{Cli, Command, LogFormat, run};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// See `mailroom::allocator` for why mimalloc, and its settings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs before anything allocates (an ELF static constructor).
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = mailroom::allocator::tune;

unsafe extern "C" {
    safe fn signal(signum: i32, handler: usize) -> usize;
}
const SIGPIPE: i32 = 13;
const SIG_DFL: usize = 0;

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run) {
        // A report piped into `head` ends quietly, as Unix tools do, instead
        // of panicking on the closed pipe. The daemon keeps Rust's default
        // (SIGPIPE ignored): a dropped network peer must be an error to
        // handle, never the end of the process.
        signal(SIGPIPE, SIG_DFL);
    }
    let filter = EnvFilter::try_from_env("MAILROOM_LOG").unwrap_or_else(|_| EnvFilter::new("warn,html5ever=error"));
    // Colour only for a person at a terminal: journald, log files and
    // shippers get plain text they can grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // async-imap logs every command it sends at trace level, LOGIN with
    // its password: whatever MAILROOM_LOG asks for, none of that is kept.
    // sqlx warns of a malformed ~/.pgpass line by quoting the line, password
    // and all, on every connection: dropped too (the connection then fails
    // on its missing password, which says what to fix).
    let no_secrets = tracing_subscriber::filter::filter_fn(|meta| {
        !(*meta.level() == tracing::Level::TRACE && meta.target().starts_with("async_imap")
            || meta.target().starts_with("sqlx_postgres::options::pgpass"))
    });
    match cli.log_format {
        LogFormat::Json => builder.json().finish().with(no_secrets).init(),
        LogFormat::Text => builder.finish().with(no_secrets).init(),
    }
    // Before anything opens a database (and after logging, which it may use).
    mailroom::store::configure_sqlite();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailroom: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("mailroom: {e}");
        std::process::exit(e.exit_code());
    }
}
