//! `statebench goose`: every statebench scenario registered in one goose
//! attack, with goose's own command line (`--host`, `-u`, `-r`, `-t`,
//! `--scenarios`, `--scenarios-list`, `--test-plan`, `--report-file`, …)
//! parsed by goose's own parser, flattened in here so that `--help` shows
//! it whole. The few options only statebench has carry an `--sb-` prefix,
//! which no goose option uses, and can come from the environment instead.

use std::time::Duration;

use clap::Args;
use goose::prelude::*;

use crate::loadtests::{LoadConfig, Policy, ScenarioKind, Shared};

/// The scenarios with the machine name goose's `--scenarios` selects
/// them by and what their user does, from the registry; and an example.
fn scenarios_help() -> String {
    let mut help = String::from(
        "Scenarios (all run unless --scenarios names some, by the name in brackets):\n",
    );
    for kind in ScenarioKind::ALL {
        let about = clap::ValueEnum::to_possible_value(&kind)
            .and_then(|v| v.get_help().map(ToString::to_string))
            .unwrap_or_default();
        help.push_str(&format!(
            "  {:<12} {:<13} {about}\n",
            kind.name(),
            format!("[{}]", machine_name(kind.name()))
        ));
    }
    help.push_str(
        "\nExample:\n  statebench goose --host http://127.0.0.1:3000 --scenarios stateless,cart \\\n    \
         -u 64 -r 16 -t 1m --report-file report.html",
    );
    help
}

/// The name goose gives a scenario on its command line: its letters and
/// digits, lower case.
pub fn machine_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

#[derive(Debug, Args)]
#[command(after_help = scenarios_help())]
pub struct GooseArgs {
    /// Items per cart in the cart scenario.
    #[arg(
        long = "sb-cart-items",
        env = "STATEBENCH_CART_ITEMS",
        value_name = "N",
        default_value_t = 10,
        help_heading = "statebench"
    )]
    pub cart_items: usize,
    /// Members per chat room in the ws-chat scenario.
    #[arg(
        long = "sb-room-size",
        env = "STATEBENCH_ROOM_SIZE",
        value_name = "N",
        default_value_t = 4,
        help_heading = "statebench"
    )]
    pub room_size: usize,
    /// Replicas to spread the requests over with statebench's embedded
    /// balancer, as comma-separated base URLs (default: --host alone).
    #[arg(
        long = "sb-replicas",
        env = "STATEBENCH_REPLICAS",
        value_name = "URLS",
        value_delimiter = ',',
        help_heading = "statebench"
    )]
    pub replicas: Vec<String>,
    /// How the embedded balancer picks a replica.
    #[arg(
        long = "sb-policy",
        env = "STATEBENCH_POLICY",
        value_enum,
        default_value = "round-robin",
        help_heading = "statebench"
    )]
    pub policy: Policy,
    /// How many times the embedded balancer sends a request again to
    /// another replica after a refused connection, or after a reset or
    /// empty answer to a GET (0: never).
    #[arg(
        long = "sb-retries",
        env = "STATEBENCH_RETRIES",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(0..=3),
        help_heading = "statebench"
    )]
    pub retries: u32,
    #[command(flatten)]
    pub goose: goose::config::GooseConfiguration,
}

/// Users the balancer keeps back-off slots for when goose decides the
/// count (a test plan, or one per CPU): more users share slots.
const SLOTS: usize = 1024;

pub async fn goose(args: GooseArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.goose.host.is_some() || !args.replicas.is_empty() || args.goose.scenarios_list,
        "give the server to load with --host URL (or several with --sb-replicas URL,URL)"
    );
    let base_url = crate::loadtests::config::base_url;
    let replicas = args
        .replicas
        .iter()
        .map(|u| base_url(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--sb-replicas: {e}"))?;
    let host = args
        .goose
        .host
        .as_deref()
        .map(base_url)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--host: {e}"))?;
    // Empty only with --scenarios-list, which loads nothing.
    let target = host
        .or_else(|| replicas.first().cloned())
        .unwrap_or_default();
    let config = LoadConfig {
        replicas,
        policy: args.policy,
        retries: args.retries,
        users: args.goose.users.unwrap_or(SLOTS),
        cart_items: args.cart_items,
        room_size: args.room_size,
        ..LoadConfig::new(target.clone(), ScenarioKind::Stateless)
    };
    let shared = Shared::new(&config);
    let mut goose_config = args.goose;
    if goose_config.host.is_none() && !target.is_empty() {
        goose_config.host = Some(target);
    }
    let mut attack = GooseAttack::initialize_with_config(goose_config)
        .and_then(crate::loadtests::client::start_shared)
        .map_err(|e| goose_error(&e))?;
    for kind in ScenarioKind::ALL {
        attack = attack.register_scenario((kind.spec().build)(&shared));
    }
    let stopper = tokio::spawn(stop_goose_on_request());
    let outcome = attack.execute().await;
    stopper.abort();
    shared.cancel.cancel();
    match outcome {
        Ok(_) => Ok(()),
        Err(GooseError::ThresholdsFailed { failed, .. }) => Err(anyhow::anyhow!(
            "goose thresholds failed: {}",
            failed
                .iter()
                .map(|f| format!("{} (observed {})", f.rule, f.observed))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(e) => Err(goose_error(&e)),
    }
}

/// goose's error in one line, with the option and the reason it gives.
fn goose_error(e: &GooseError) -> anyhow::Error {
    match e {
        GooseError::InvalidOption { option, detail, .. } if !detail.is_empty() => {
            anyhow::anyhow!("goose: {option}: {}", detail.trim_end_matches('.'))
        }
        other => anyhow::anyhow!("goose: {other}"),
    }
}

/// A stop (Ctrl-C, SIGTERM, a closed terminal) ends the attack the way
/// goose ends one: its killswitch, tripped until the attack is over. Users
/// finish the request they are in, as under goose's own Ctrl-C.
async fn stop_goose_on_request() {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(r) = crate::stop::requested() {
            goose::trigger_killswitch(&format!("stopped by {r}"));
        }
    }
}
