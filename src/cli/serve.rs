//! `statebench serve`: one reference server, built from flags with its
//! architecture's builder, until a signal drains it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::net::TcpListener;

use crate::keys::{KeyPair, TokenAlg};
use crate::revocation::Denylist;
use crate::server::ws::{self, WsConfig};
use crate::server::{Arch, Base, Lifecycle, ServeOptions, hybrid, stateful, stateless};
use crate::session::{MemoryStore, RedisStore, StoreConfig};
use crate::token::TokenService;

/// What the stateless and hybrid servers do on logout with the tokens
/// already issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Revocation {
    /// Nothing: a token stays valid until it expires.
    None,
    /// Remember revoked token ids until they expire (a map looked up on
    /// every request; per process unless shared through Redis, see
    /// --denylist-redis).
    Denylist,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Architecture to serve.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Runtime worker threads (default: one per core). Set it to the CPU
    /// limit of a container, as GOMAXPROCS is: more threads than cores only
    /// park and wake each other.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// [stateless, hybrid] Signing algorithm.
    #[arg(long, value_enum, default_value = "HS256")]
    pub alg: TokenAlg,
    /// [stateless, hybrid] File holding the HMAC secret (at least 32 bytes). Without it,
    /// STATEBENCH_JWT_SECRET is used; without both, a random secret is generated.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// [stateless, hybrid] PEM private key (PKCS#8) for RS256/ES256/EdDSA; generated if absent.
    #[arg(long, value_name = "PATH", requires = "public_key_file")]
    pub private_key_file: Option<PathBuf>,
    /// [stateless, hybrid] PEM public key (SPKI) matching --private-key-file.
    #[arg(long, value_name = "PATH", requires = "private_key_file")]
    pub public_key_file: Option<PathBuf>,
    /// [stateless] Token lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = crate::token::DEFAULT_TTL_SECS)]
    pub token_ttl: u64,
    /// [stateless, hybrid] Clock-skew leeway in seconds for exp/nbf checks.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub leeway: u64,
    /// [stateless, hybrid] Logout behaviour for issued tokens (the hybrid
    /// server revokes the refresh family either way).
    #[arg(long, value_enum, default_value = "none")]
    pub revocation: Revocation,
    /// [stateless, hybrid] Most revoked token ids remembered (logout answers 503 beyond).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_revoked: usize,
    /// [stateless, hybrid] Share the denylist through this Redis server
    /// (redis://): a logout on any replica is refused by all of them within
    /// a pub/sub hop, and a replica that starts later loads the revocations
    /// in force before it serves. The hybrid server shares it through its
    /// --store by default when that is a redis:// URL.
    #[arg(long, value_name = "URL")]
    pub denylist_redis: Option<String>,

    /// [hybrid] Access-token lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = hybrid::DEFAULT_ACCESS_TTL_SECS)]
    pub access_ttl: u64,
    /// [hybrid] Refresh-family lifetime in seconds: a family whose refresh
    /// token goes unused this long expires.
    #[arg(long, value_name = "SECS", default_value_t = hybrid::DEFAULT_REFRESH_TTL_SECS)]
    pub refresh_ttl: u64,

    /// [stateful, hybrid] Session store (refresh families on the hybrid server): `memory`; a Redis URL (redis://127.0.0.1:6379)
    /// shared by replicas; or a Redis Cluster (redis-cluster://127.0.0.1:7000,127.0.0.1:7001),
    /// sessions spread over its masters.
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// [stateful] Idle session lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub session_ttl: u64,
    /// [stateful, hybrid] Most live sessions or refresh families; login answers
    /// 503 with Retry-After beyond.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_sessions: usize,
    /// [stateful, stateless, hybrid] Seconds between sweeps of expired sessions,
    /// families or revocations.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub sweep_interval: u64,
    /// [stateful] Mark the session cookie `Secure` (when served behind TLS).
    #[arg(long)]
    pub cookie_secure: bool,
    /// [stateful, hybrid, ws, shared denylist] Key prefix in Redis (isolates runs sharing a server).
    #[arg(long, default_value = "statebench")]
    pub redis_prefix: String,

    /// [ws] Redis URL carrying chat rooms across replicas (pub/sub); without it
    /// rooms are per process.
    #[arg(long, value_name = "URL")]
    pub backplane: Option<String>,
    /// [ws] Largest message in bytes; larger ones close the connection with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message: usize,
    /// [ws] Close a connection that sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ws_idle_timeout: u64,
    /// [ws] Seconds between server pings.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub ws_ping_interval: u64,
    /// [ws] Most open connections; further upgrades get 503.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub ws_max_connections: usize,

    /// [ws] Per-connection read buffer in bytes (tungstenite's default is 131072;
    /// small buffers keep idle connections cheap).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub ws_read_buffer: usize,

    /// Seconds a client has to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds the graceful drain may take on SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The token service the key flags describe, signing tokens that live `ttl`
/// seconds. Without a key, one is generated, with a warning.
fn tokens(args: &ServeArgs, ttl: u64) -> anyhow::Result<Arc<TokenService>> {
    let env_secret = std::env::var("STATEBENCH_JWT_SECRET").ok();
    let keys = KeyPair::load(
        args.alg,
        args.secret_file.as_deref(),
        env_secret.as_deref(),
        args.private_key_file.as_deref(),
        args.public_key_file.as_deref(),
    )?;
    if keys.generated {
        tracing::warn!(
            alg = args.alg.name(),
            "no key given: generated a random one; tokens will not survive a restart \
             nor be accepted by other replicas unless the key is shared"
        );
    }
    Ok(Arc::new(TokenService::new(keys, ttl, args.leeway)))
}

/// The denylist `--revocation` asks for: per process, or shared through
/// Redis (then loaded before this returns, unless a signal comes first).
async fn denylist(
    args: &ServeArgs,
    lifecycle: &Lifecycle,
) -> anyhow::Result<Option<Arc<Denylist>>> {
    if args.revocation == Revocation::None {
        anyhow::ensure!(
            args.denylist_redis.is_none(),
            "--denylist-redis needs --revocation denylist"
        );
        return Ok(None);
    }
    let store_is_one_redis = args.arch == Arch::Hybrid
        && crate::session::redis::conn::is_redis_url(&args.store)
        && crate::session::redis::conn::cluster_nodes(&args.store).is_none();
    let url = match &args.denylist_redis {
        Some(url) => url,
        None if store_is_one_redis => &args.store,
        None => {
            if args.store != "memory" {
                tracing::warn!(
                    "the denylist is per process; pass --denylist-redis redis://... to share it"
                );
            }
            return Ok(Some(Arc::new(Denylist::new(args.max_revoked))));
        }
    };
    let list = Denylist::shared(
        args.max_revoked,
        url,
        &args.redis_prefix,
        &lifecycle.stop,
        &lifecycle.tasks,
    )
    .map_err(|e| anyhow::anyhow!("--denylist-redis: {e}"))?;
    tracing::info!("loading the shared denylist from Redis");
    tokio::select! {
        () = list.ready() => Ok(Some(list)),
        () = crate::server::shutdown_signal() => anyhow::bail!("stopped before the shared denylist was loaded"),
    }
}

/// The store `--store` names, opened.
enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

/// `memory`, or a Redis server or cluster (which may be down at start-up:
/// the server then answers 503 until it is reachable).
async fn open_store(args: &ServeArgs, config: StoreConfig) -> anyhow::Result<Store> {
    if args.store == "memory" {
        return Ok(Store::Memory(Arc::new(MemoryStore::new(config))));
    }
    if !crate::session::redis::conn::is_redis_url(&args.store) {
        anyhow::bail!(
            "--store must be `memory`, a redis:// URL or a redis-cluster://host:port[,host:port...] URL, not {:?}",
            args.store
        );
    }
    let store = RedisStore::open(&args.store, &args.redis_prefix, config)?;
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "Redis not reachable yet; answering 503 until it is");
    }
    Ok(Store::Redis(Arc::new(store)))
}

/// Evaluates `$body` with `$s` bound to the opened store, whichever it is
/// (the servers are generic over the store, so each kind is its own type).
macro_rules! over_store {
    ($store:expr, |$s:ident| $body:expr) => {
        match $store {
            Store::Memory($s) => $body,
            Store::Redis($s) => $body,
        }
    };
}

/// `statebench serve`: builds the chosen server from flags and runs it.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        header_read_timeout: secs(args.header_read_timeout.max(1)),
        request_timeout: secs(args.request_timeout.max(1)),
        drain_timeout: secs(args.shutdown_timeout),
    };
    let lifecycle = Lifecycle::default();
    let base = Base {
        request_timeout: options.request_timeout,
        sweep_interval: Some(secs(args.sweep_interval.max(1))),
        ..Base::default()
    };

    let app = match args.arch {
        Arch::Stateless => stateless::build(
            stateless::Config {
                tokens: tokens(&args, args.token_ttl)?,
                denylist: denylist(&args, &lifecycle).await?,
            },
            &base,
            &lifecycle,
        ),
        Arch::Stateful => {
            let store = StoreConfig {
                idle_ttl_ms: args.session_ttl.saturating_mul(1000),
                max_sessions: args.max_sessions,
            };
            let cookie_secure = args.cookie_secure;
            over_store!(open_store(&args, store).await?, |store| {
                stateful::build(
                    stateful::Config {
                        store,
                        cookie_secure,
                    },
                    &base,
                    &lifecycle,
                )
            })
        }
        Arch::Hybrid => {
            let store = StoreConfig {
                idle_ttl_ms: args.refresh_ttl.saturating_mul(1000),
                max_sessions: args.max_sessions,
            };
            let tokens = tokens(&args, args.access_ttl)?;
            let denylist = denylist(&args, &lifecycle).await?;
            over_store!(open_store(&args, store).await?, |store| {
                hybrid::build(
                    hybrid::Config {
                        tokens,
                        store,
                        denylist,
                    },
                    &base,
                    &lifecycle,
                )
            })
        }
        Arch::Ws => {
            let limits = WsConfig {
                max_message: args.ws_max_message,
                idle_timeout: secs(args.ws_idle_timeout.max(1)),
                ping_interval: secs(args.ws_ping_interval.max(1)),
                max_connections: args.ws_max_connections,
                read_buffer: args.ws_read_buffer.max(256),
                ..WsConfig::default()
            };
            let backplane = args
                .backplane
                .clone()
                .map(|url| (url, args.redis_prefix.clone()));
            ws::build(ws::Config { limits, backplane }, &base, &lifecycle)?.0
        }
    };

    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr()?;
    // One line on stdout that harnesses read to learn the port.
    crate::stop::println(&format!(
        "statebench {} listening on http://{local}",
        args.arch
    ));
    crate::server::run(
        listener,
        app,
        lifecycle,
        options,
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
