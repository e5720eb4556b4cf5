//! `verity bench`: a Redis-protocol load generator with latency percentiles.
//!
//! `clients` connections each send `pipeline` commands, wait for their replies, and repeat,
//! until `ops` commands of the test have been answered (bounded in count, and in time by
//! `max_seconds`). Latency is measured per command, from the write of its batch to the read
//! of its reply, into an HDR histogram. Works against any RESP server (Verity or Redis), so
//! both are measured by the same code.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Flags of `verity bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// A node's (or any Redis server's) client address.
    #[arg(long, default_value = "127.0.0.1:6001")]
    pub addr: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Commands each connection sends before reading their replies.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    /// Commands per test.
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Tests to run, in order: `set`, `get`.
    #[arg(long, value_delimiter = ',', default_value = "set,get")]
    pub tests: Vec<String>,
    /// Size of each value written, in bytes.
    #[arg(long, default_value_t = 3)]
    pub value_bytes: usize,
    /// Number of distinct keys (`key:0` …).
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Stop a test after this many seconds even if `ops` are not done.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
}

/// The figures of one test.
#[derive(Debug)]
pub struct BenchResult {
    /// Test name.
    pub test: String,
    /// Commands answered without error.
    pub ok: u64,
    /// Commands answered with an error.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-command latency, microseconds.
    pub latency_us: Histogram<u64>,
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let ms = |quantile: f64| self.latency_us.value_at_quantile(quantile) as f64 / 1000.0;
        write!(
            f,
            "{:<4} {:>9} ops in {:>6.2} s = {:>9.0} ops/s   latency p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms   errors {}",
            self.test.to_uppercase(),
            self.ok,
            seconds,
            self.ok as f64 / seconds.max(f64::EPSILON),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.latency_us.max() as f64 / 1000.0,
            self.errors
        )
    }
}

/// Runs every test and prints a line for each.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.clients >= 1 && args.pipeline >= 1 && args.keyspace >= 1,
        "--clients, --pipeline and --keyspace must be at least 1"
    );
    println!(
        "verity bench: {} clients, pipeline {}, {} ops per test, {}-byte values, {} keys, against {}",
        args.clients, args.pipeline, args.ops, args.value_bytes, args.keyspace, args.addr
    );
    for test in &args.tests {
        let result = run_test(&args, test).await?;
        println!("{result}");
    }
    Ok(())
}

/// Runs one test (`set` or `get`).
pub async fn run_test(args: &BenchArgs, test: &str) -> anyhow::Result<BenchResult> {
    if test != "set" && test != "get" {
        bail!("unknown test {test:?}: use set or get");
    }
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..args.clients {
        let stream = TcpStream::connect(args.addr)
            .await
            .with_context(|| format!("cannot connect to {}", args.addr))?;
        stream.set_nodelay(true)?;
        let issued = Arc::clone(&issued);
        let args = args.clone();
        let test = test.to_string();
        tasks.push(tokio::spawn(async move {
            client_loop(stream, &args, &test, client as u64, &issued, deadline).await
        }));
    }
    let mut result = BenchResult {
        test: test.to_string(),
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new(3).expect("3 significant digits is valid"),
    };
    for task in tasks {
        let (ok, errors, histogram) = task.await.context("bench client panicked")??;
        result.ok += ok;
        result.errors += errors;
        result
            .latency_us
            .add(histogram)
            .context("merging latency histograms")?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

async fn client_loop(
    stream: TcpStream,
    args: &BenchArgs,
    test: &str,
    client: u64,
    issued: &AtomicU64,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let value = vec![b'x'; args.value_bytes];
    let (mut ok, mut errors) = (0, 0);
    let mut request = Vec::new();
    let mut key_counter = client.wrapping_mul(7919);
    while Instant::now() < deadline {
        let claimed = issued.fetch_add(args.pipeline as u64, Ordering::Relaxed);
        if claimed >= args.ops {
            break;
        }
        let batch = (args.ops - claimed).min(args.pipeline as u64);
        request.clear();
        for _ in 0..batch {
            key_counter = key_counter.wrapping_add(1);
            let key = format!("key:{}", key_counter % args.keyspace);
            let words: Vec<&[u8]> = if test == "set" {
                vec![b"SET", key.as_bytes(), &value]
            } else {
                vec![b"GET", key.as_bytes()]
            };
            request.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
            for word in words {
                request.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
                request.extend_from_slice(word);
                request.extend_from_slice(b"\r\n");
            }
        }
        let sent = Instant::now();
        writer.write_all(&request).await?;
        for _ in 0..batch {
            if read_reply(&mut reader).await? {
                ok += 1;
            } else {
                errors += 1;
            }
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            histogram
                .record(micros.max(1))
                .context("recording latency")?;
        }
    }
    Ok((ok, errors, histogram))
}

/// Reads one RESP2 reply; returns whether it was not an error.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> anyhow::Result<bool> {
    let mut line = Vec::new();
    let mut pending = 1u64;
    let mut success = true;
    while pending > 0 {
        pending -= 1;
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            bail!("server closed the connection");
        }
        let text = std::str::from_utf8(&line)
            .context("reply is not text")?
            .trim_end();
        let (marker, rest) = text.split_at(1.min(text.len()));
        match marker {
            "+" | ":" => {}
            "-" => {
                success = false;
            }
            "$" => {
                let length: i64 = rest.parse().context("bad bulk length")?;
                if length >= 0 {
                    let mut body = vec![0; usize::try_from(length)? + 2];
                    reader.read_exact(&mut body).await?;
                }
            }
            "*" => {
                let count: i64 = rest.parse().context("bad array length")?;
                pending += u64::try_from(count.max(0))?;
            }
            _ => bail!("unexpected reply line {text:?}"),
        }
    }
    Ok(success)
}
