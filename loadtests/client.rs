//! The users' HTTP clients. Each user holds a client of its own: its own
//! keep-alive connections (so that routing per connection means what it
//! says) and its own cookie jar (a stateful user's `sid`).
//!
//! goose builds that client as it creates the user, before the load
//! starts, and building a client loads and parses the system's root
//! certificates: about 3 ms of CPU per user here, two seconds of the
//! generator's core for the 640 users of a 10,000 requests/s step, spent
//! before every load and counted in the generator's CPU. So goose builds
//! one client that every user starts with ([`start_shared`]), and each
//! user gets its own on its first request ([`super::Shared::url`]), built
//! without root certificates when every target is plain HTTP, in tens of
//! microseconds.

use std::time::Duration;

use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::prelude::*;

/// goose's own request timeout when `--timeout` gives none.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Has goose build one client for its users to start with, not one each.
pub fn start_shared(attack: GooseAttack) -> Result<GooseAttack, GooseError> {
    attack.set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies())
}

/// How each user's own client is built.
#[derive(Debug, Clone, Copy)]
pub struct UserClients {
    /// Whether any target is HTTPS: then the system's roots are loaded.
    tls: bool,
}

impl UserClients {
    /// Clients for a run against `targets`.
    pub fn for_targets<'a>(targets: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            tls: targets.into_iter().any(|t| t.starts_with("https://")),
        }
    }

    /// A new client with a cookie jar and no connection yet, with the
    /// client options of goose's command line (`--timeout`,
    /// `--accept-invalid-certs`) as goose would have built it.
    pub fn build(self, config: &GooseConfiguration) -> reqwest::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(timeout(config))
            .danger_accept_invalid_certs(config.accept_invalid_certs)
            .user_agent(concat!("statebench/", env!("CARGO_PKG_VERSION")));
        let builder = if self.tls {
            builder
        } else {
            // Plain HTTP verifies no certificate: no roots to load.
            builder.tls_certs_only(std::iter::empty())
        };
        builder.build()
    }
}

/// goose's `--timeout` (seconds, fractions allowed), else its default.
fn timeout(config: &GooseConfiguration) -> Duration {
    config
        .timeout
        .as_deref()
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(REQUEST_TIMEOUT, Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_targets_need_no_roots() {
        let http = ["http://127.0.0.1:1".to_owned()];
        assert!(!UserClients::for_targets(&http).tls);
        let mixed = [
            "http://127.0.0.1:1".to_owned(),
            "https://example.test".to_owned(),
        ];
        assert!(UserClients::for_targets(&mixed).tls);
        // Both kinds build.
        let config = GooseConfiguration::default();
        UserClients::for_targets(&http).build(&config).unwrap();
        UserClients::for_targets(&mixed).build(&config).unwrap();
    }

    #[test]
    fn goose_timeout_carries_over() {
        let mut config = GooseConfiguration::default();
        assert_eq!(timeout(&config), REQUEST_TIMEOUT);
        config.timeout = Some("2.5".into());
        assert_eq!(timeout(&config), Duration::from_millis(2500));
        config.timeout = Some("soon".into());
        assert_eq!(timeout(&config), REQUEST_TIMEOUT);
    }
}
