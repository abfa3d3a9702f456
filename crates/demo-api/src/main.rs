//! The `demo-api` binary: serves the demo orders API until SIGINT or SIGTERM.
//!
//! Prints exactly one line to stdout, `listening on http://ADDR`, so scripts that pass port 0
//! can read the port; logs go to stderr.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use demo_api::{DataSizes, DemoConfig, DemoState, Scheme, WebhookConfig};

/// A small pipeline-friendly orders API (the target of connectors/orders.yaml).
#[derive(Debug, Parser)]
#[command(name = "demo-api", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Number of orders to generate.
    #[arg(long, default_value_t = 250)]
    orders: usize,
    /// Number of products to generate.
    #[arg(long, default_value_t = 120)]
    products: usize,
    /// Number of customers to generate.
    #[arg(long, default_value_t = 60)]
    customers: usize,
    /// Number of events to generate.
    #[arg(long, default_value_t = 230)]
    events: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Bearer token clients must send.
    #[arg(
        long,
        env = "DEMO_API_TOKEN",
        default_value = "demo-token",
        hide_env_values = true
    )]
    token: String,
    /// Requests allowed per token per second.
    #[arg(long, default_value_t = 1000)]
    rps: u64,
    /// Time POST /orders takes to process, in milliseconds.
    #[arg(long, default_value_t = 0)]
    processing_delay_ms: u64,
    /// Send every order change as a signed webhook to this URL.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Secret of the webhook signatures (standard_webhooks: whsec_ + base64).
    #[arg(long, env = "DEMO_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Signature scheme: hmac_sha256, stripe or standard_webhooks.
    #[arg(long, default_value = "hmac_sha256", value_parser = parse_scheme)]
    webhook_scheme: Scheme,
    /// Right after start, make this many order changes (each sent as a webhook).
    #[arg(long)]
    webhook_demo: Option<usize>,
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse()
        .map_err(|e: demo_api::sign::SignError| e.to_string())
}

fn config(args: &Args) -> Result<DemoConfig, String> {
    let webhook = match (&args.webhook_url, &args.webhook_secret) {
        (Some(url), Some(secret)) => Some(WebhookConfig::new(url, secret, args.webhook_scheme)),
        (Some(_), None) => {
            return Err("--webhook-url needs --webhook-secret (or DEMO_WEBHOOK_SECRET)".into());
        }
        (None, _) if args.webhook_demo.is_some() => {
            return Err("--webhook-demo needs --webhook-url and --webhook-secret".into());
        }
        (None, _) => None,
    };
    Ok(DemoConfig {
        listen: args.listen,
        seed: args.seed,
        sizes: DataSizes {
            orders: args.orders,
            products: args.products,
            customers: args.customers,
            events: args.events,
        },
        token: args.token.clone(),
        rate_limit: args.rps,
        rate_window: Duration::from_secs(1),
        processing_delay: Duration::from_millis(args.processing_delay_ms),
        webhook,
        ..DemoConfig::default()
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let state = match DemoState::new(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot read the listening address: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    tracing::info!(
        %addr,
        orders = config.sizes.orders,
        seed = config.seed,
        rps = config.rate_limit,
        webhook = config.webhook.as_ref().map(|w| w.url.as_str()).unwrap_or("-"),
        "demo-api serving"
    );
    if let Some(n) = args.webhook_demo {
        let changed = state.webhook_demo(n);
        tracing::info!(changes = changed.len(), "webhook demo burst queued");
    }
    match demo_api::serve(listener, state, stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
