//! The `verity` binary: `verity node`, `verity cluster`, `verity bench`.

use clap::{Parser, Subcommand};
use verity_node::bench::{self, BenchArgs};
use verity_node::cluster::{self, ClusterArgs};
use verity_node::logging::{self, LogFormat};
use verity_node::run;
use verity_node::settings::NodeArgs;

/// Verity: a Raft-replicated key-value store that speaks the Redis protocol.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log format: compact lines for people, or JSON. The level comes from RUST_LOG.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Run one node of a cluster.
    Node(Box<NodeArgs>),
    /// Run a local cluster of node processes on loopback ports, for trying Verity out.
    Cluster(ClusterArgs),
    /// Measure throughput and latency of SET and GET against a node (or any Redis server).
    Bench(BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Verb::Node(args) => {
            let settings = args.resolve()?;
            logging::init(cli.log_format, format!("n{}", settings.id.0));
            run::run_node(settings).await
        }
        Verb::Cluster(args) => {
            logging::init(cli.log_format, "cluster".into());
            cluster::run_cluster(args).await
        }
        Verb::Bench(args) => bench::run_bench(args).await,
    }
}
