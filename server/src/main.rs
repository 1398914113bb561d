//! The `herald` binary: read the configuration, start logging, listen, and run until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use server::Config;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    if let Some(command) = &config.command {
        return one_off(command, &config).await;
    }

    let listener = match TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("Herald is listening on http://{addr}"),
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
    match command {
        server::config::Command::ImportToRedis => {
            let Some(url) = &config.redis else {
                tracing::error!("import-to-redis needs --redis URL (HERALD_REDIS_URL)");
                return ExitCode::FAILURE;
            };
            match server::log::import::import_to_redis(&config.data_dir, url).await {
                Ok(done) => {
                    tracing::info!(
                        "copied {} rooms and {} messages from {} into Redis",
                        done.rooms,
                        done.messages,
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
