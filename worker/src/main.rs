use shared::{config::Config, telemetry::init_tracing};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    init_tracing(config.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::process::cancel_on_signal(shutdown.clone()));
    Ok(shared::worker::run(config, shutdown).await?)
}
