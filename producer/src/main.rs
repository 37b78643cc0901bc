use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = producer::cli::Cli::parse();
    let code = producer::cli::run(cli).await;
    std::process::exit(code);
}
