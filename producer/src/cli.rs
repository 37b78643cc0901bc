//! Command-line parsing and exit codes. Each command is a library function tests can call.

use clap::{Parser, Subcommand};
use shared::{config::Config, telemetry::init_tracing};

#[derive(Debug, Parser)]
#[command(name = "producer", about = "Keeps Facebook Page tokens alive: enqueue refreshes, admin commands, demo")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing and apply the migrations.
    Migrate,
    /// The cron trigger, the HTTP API and the dashboard, until SIGTERM/SIGINT.
    Serve,
    /// One cron cycle now: enqueue a refresh for every Facebook channel.
    RunJob,
    /// Enqueue every channel and wait for all results; exit 1 if any needs reauthorization.
    RefreshAll {
        /// Enqueue and exit without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// Validate every channel's page token now, read-only; exit 1 if any token is invalid.
    CheckAll {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refresh one channel through the queue and wait for a settled result.
    RefreshChannel {
        /// The channel_facebook_pages id.
        channel_id: String,
        /// Seconds to wait for a settled result (at most 86400, a day).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(..=crate::refresh_channel::MAX_WAIT_SECS))]
        wait: u64,
        /// Run the job in this process; no worker needed.
        #[arg(long)]
        inline: bool,
    },
    /// Re-drive dead-lettered jobs (all, or one channel's).
    RetryDead {
        #[arg(long)]
        channel: Option<i64>,
    },
    /// Per-account API tokens (stored hashed).
    ApiToken {
        #[command(subcommand)]
        action: ApiTokenAction,
    },
    /// Everything in one process against a built-in simulated Graph API with seeded channels.
    Demo(crate::demo::DemoArgs),
    /// Pause or resume the cron schedule for every producer replica, or show whether it is paused.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ScheduleAction {
    /// Skip the cron ticks until resumed (reports, the API and run-job go on).
    Pause,
    /// Let the cron ticks fire again.
    Resume,
    /// Whether the schedule is paused, by whom and since when.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenAction {
    /// Create a token for an account and print it (the only time it is shown).
    Create {
        #[arg(long)]
        account: i64,
    },
    /// Revoke a token, given the token itself or its id.
    Revoke { token_or_id: String },
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 2;
        }
    };
    // The demo keeps its logs out of the way of its progress and tables, so it sets up its own.
    if !matches!(cli.command, Command::Demo(_)) {
        init_tracing(config.log_format);
    }
    let result = match cli.command {
        Command::Migrate => migrate(&config).await,
        Command::Serve => crate::serve::run(config).await,
        Command::CheckAll { json } => return crate::check_all::command(&config, json).await,
        Command::RunJob => crate::cycle::run_job(&config).await,
        Command::RefreshAll { no_wait } => return crate::refresh_all::command(&config, no_wait).await,
        Command::RefreshChannel { channel_id, wait, inline } => {
            return crate::refresh_channel::command(&config, &channel_id, wait, inline).await;
        }
        Command::RetryDead { channel } => {
            crate::retry_dead::retry_dead(&config, channel).await.map(|line| println!("{line}"))
        }
        Command::ApiToken { action } => return api_token(&config, action).await,
        Command::Demo(args) => return crate::demo::command(config, args).await,
        Command::Schedule { action } => schedule(&config, action).await.map(|line| println!("{line}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// `producer schedule pause|resume|status`: the one line it prints.
pub async fn schedule(config: &Config, action: ScheduleAction) -> anyhow::Result<String> {
    let mut redis = shared::queue::connect(config).await?;
    let keys = shared::keys::RedisKeys::of(config);
    let describe = |p: &shared::schedule::Paused| format!("schedule paused by {} since {}", p.by, p.at.to_rfc3339());
    Ok(match action {
        ScheduleAction::Pause => {
            let p = shared::schedule::pause(&mut redis, &keys, "producer schedule pause").await?;
            tracing::info!(paused_by = %p.by, "cron schedule paused");
            describe(&p)
        }
        ScheduleAction::Resume => {
            let was = shared::schedule::resume(&mut redis, &keys).await?;
            tracing::info!(was_paused = was, "cron schedule resumed");
            if was { "schedule resumed".to_owned() } else { "schedule was not paused".to_owned() }
        }
        ScheduleAction::Status => match shared::schedule::paused(&mut redis, &keys).await? {
            Some(p) => describe(&p),
            None => "schedule running".to_owned(),
        },
    })
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    shared::store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(2))
        .await?;
    println!("database ready; migrations applied");
    Ok(())
}

async fn api_token(config: &Config, action: ApiTokenAction) -> i32 {
    let db = match shared::store::connect_and_migrate(
        &config.database_url,
        &config.database_schema,
        config.database_pool_size(2),
    )
    .await
    {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match action {
        ApiTokenAction::Create { account } if account <= 0 || account > i64::from(i32::MAX) => {
            eprintln!("bad input: --account must be a positive account id");
            2
        }
        ApiTokenAction::Create { account } => match shared::store::create_api_token(&db, account).await {
            Ok((id, token)) => {
                // Printed once, on purpose: this is how the operator receives it.
                println!("{}", token.expose());
                eprintln!("created API token {id} for account {account}; it is not shown again");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        ApiTokenAction::Revoke { token_or_id } => match shared::store::revoke_api_token(&db, &token_or_id).await {
            Ok(0) => {
                eprintln!("no live token matches");
                1
            }
            Ok(n) => {
                println!("revoked {n} token(s)");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    }
}
