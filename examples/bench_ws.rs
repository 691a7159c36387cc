//! WebSocket echo client for `bench/run.sh`: opens one WebSocket, sends messages one at a time,
//! waits for each echo and reports round-trip percentiles.
//!
//! `bench_ws ws://127.0.0.1:18080/app_proxy/<id>/ws --cookie "vestibule_session=…" -n 20000`
//!
//! Prints one line of `key=value` pairs: `messages` (all sent, warm-up included, for CPU per
//! message), `measured`, `p50_us`, `p99_us`, `mean_us`, `max_us`, `elapsed_s`.

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser)]
struct Args {
    /// ws:// URL of an echo endpoint.
    url: String,
    /// A Cookie header to send with the handshake (vestibule needs its session cookie).
    #[arg(long)]
    cookie: Option<String>,
    /// Messages to time.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    messages: usize,
    /// Untimed messages sent first.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Payload size in bytes (binary frames).
    #[arg(long, default_value_t = 128)]
    size: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut req = args.url.as_str().into_client_request()?;
    if let Some(c) = &args.cookie {
        req.headers_mut()
            .insert("cookie", HeaderValue::from_str(c)?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let payload = bytes::Bytes::from(vec![b'w'; args.size]);
    let mut rtts = Vec::with_capacity(args.messages);
    let started = Instant::now();
    for i in 0..args.warmup + args.messages {
        let t = Instant::now();
        ws.send(Message::Binary(payload.clone())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.len() == args.size => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => anyhow::bail!("unexpected reply: {other:?}"),
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the connection closed after {i} messages"),
            }
        }
        if i >= args.warmup {
            rtts.push(t.elapsed());
        }
    }
    let elapsed = started.elapsed();
    let _ = ws.close(None).await;
    rtts.sort_unstable();
    let pct = |p: f64| -> Duration {
        let idx = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[idx]
    };
    let mean = rtts.iter().sum::<Duration>() / rtts.len().max(1) as u32;
    println!(
        "messages={} measured={} p50_us={:.1} p99_us={:.1} mean_us={:.1} max_us={:.1} elapsed_s={:.3}",
        args.warmup + args.messages,
        rtts.len(),
        micros(pct(0.50)),
        micros(pct(0.99)),
        micros(mean),
        micros(rtts.last().copied().unwrap_or_default()),
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
