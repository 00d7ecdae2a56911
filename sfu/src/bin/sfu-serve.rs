//! Runs the SFU on its own, for the SFU-vs-Janus benchmark (`bench/sfu/`):
//! the signaling endpoint on `--listen`, media sockets on `--bind-ip`, no
//! bridge, no Matrix. It prints `LISTENING <port>` once it accepts joins and
//! serves until killed.
//!
//! ```text
//! sfu-serve [--listen 127.0.0.1:7880] [--bind-ip 127.0.0.1] [--key K --secret S]
//! ```

use std::net::{IpAddr, SocketAddr};

use salon_sfu::{Sfu, SfuConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    listen: SocketAddr,
    bind_ip: IpAddr,
    key: String,
    secret: String,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        listen: "127.0.0.1:7880".parse()?,
        bind_ip: "127.0.0.1".parse()?,
        key: "APIbench".into(),
        secret: "bench-secret-of-sufficient-length".into(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => parsed.listen = value()?.parse()?,
            "--bind-ip" => parsed.bind_ip = value()?.parse()?,
            "--key" => parsed.key = value()?,
            "--secret" => parsed.secret = value()?,
            other => {
                return Err(format!(
                    "unknown argument {other}; use --listen ADDR --bind-ip IP --key K --secret S"
                )
                .into());
            }
        }
    }
    Ok(parsed)
}

async fn serve(args: Args) -> Result<(), Error> {
    let mut config = SfuConfig::local(&args.key, &args.secret);
    config.bind_ip = args.bind_ip;
    config.max_participants = 1000;
    config.max_bitrate_bps = 50_000_000;
    let sfu = Sfu::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    axum::serve(listener, sfu.router()).await?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    // One worker per CPU the process may run on (the bench pins it to one).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}
