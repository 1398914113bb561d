//! The `herald` binary: read the configuration, start logging, listen, and run until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use server::{Config, config::LogFormat};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// The static build's allocator (see the `mimalloc` feature).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // One object per line: the event's fields at the top level, the spans it happened in
        // (request, connection) by name with their fields (docs/OPERATIONS.md, "Logs").
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .init(),
    }

    if let Some(command) = &config.command {
        return one_off(command, &config).await;
    }

    // One serving Herald per data dir (a second one, or a restore, is refused while this runs).
    let _lock = if config.redis.is_none() {
        match server::log::backup::lock_data_dir(&config.data_dir) {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::error!("{e:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let listener = match TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => {
            let interfaces = if addr.ip().is_unspecified() {
                server::reach::interfaces()
            } else {
                Vec::new()
            };
            for line in server::reach::start_lines(addr, &interfaces) {
                tracing::info!("{line}");
            }
        }
        Err(e) => tracing::warn!("listening, but the local address is unknown: {e}"),
    }

    match server::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a one-off task instead of serving.
async fn one_off(command: &server::config::Command, config: &Config) -> ExitCode {
    use server::{config::Command, log::backup};
    match command {
        Command::Backup { dest } => match backup::backup(&config.data_dir, dest) {
            Ok(done) => {
                tracing::info!(
                    "backed up {} rooms and {} messages to {} (with new epochs)",
                    done.rooms,
                    done.messages,
                    dest.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Restore { src } => match backup::restore(&config.data_dir, src) {
            Ok(done) => {
                let kept = done.kept.as_ref().map_or_else(
                    || "there was none before".to_owned(),
                    |kept| format!("the log replaced is kept as {}", kept.display()),
                );
                tracing::info!(
                    "restored {} rooms and {} messages from {} into {} ({kept})",
                    done.rooms,
                    done.messages,
                    src.display(),
                    config.data_dir.display(),
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::ImportToRedis => {
            let Some(url) = &config.redis else {
                tracing::error!("import-to-redis needs --redis URL (HERALD_REDIS_URL)");
                return ExitCode::FAILURE;
            };
            match import_to_redis(config, url).await {
                Ok(said) => {
                    tracing::info!(
                        "copied {said} from {} into Redis",
                        config.data_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The history and then the people of the single node in `--data-dir`, into the Redis at `url`;
/// neither is copied if Redis has either already.
async fn import_to_redis(config: &server::Config, url: &str) -> anyhow::Result<String> {
    let link = server::redis_link::RedisLink::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Redis at {url}: {e}"))?;
    if !server::people::redis_has_no_people(&link).await? {
        anyhow::bail!("Redis already holds accounts or a setup: nothing was copied");
    }
    let log = server::log::import::import_to_redis(&config.data_dir, url).await?;
    let ttl = std::time::Duration::from_secs(config.session_days.saturating_mul(24 * 3600));
    let db = config.data_dir.join(server::log::DB_FILE);
    let (accounts, sessions) = server::people::import_to_redis(&db, &link, ttl).await?;
    Ok(format!(
        "{} rooms and {} messages, {accounts} accounts and {sessions} sessions",
        log.rooms, log.messages
    ))
}
