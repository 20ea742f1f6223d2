//! A server that implements only part of the contract — `POST /login` and
//! `GET /profile`, like the classic Express example — for checking that
//! `statebench compare --target` names what a server lacks and skips only
//! the matrices that need it.
//!
//! `cargo run --release --example partial_server` prints its address.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use statebench::keys::{KeyPair, TokenAlg};
use statebench::model::User;
use statebench::token::{Claims, TokenService};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tokens = Arc::new(TokenService::new(
        KeyPair::generate(TokenAlg::HS256)?,
        900,
        0,
    ));
    let app = Router::new()
        .route("/login", post(login))
        .route("/profile", get(profile))
        .with_state(tokens);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "partial server listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

async fn login(State(tokens): State<Arc<TokenService>>) -> Result<String, StatusCode> {
    let user = User::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .as_secs();
    let token = tokens
        .sign(&Claims::for_login(&user, now, tokens.ttl_secs()))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(serde_json::json!({ "token": token }).to_string())
}

async fn profile(
    State(tokens): State<Arc<TokenService>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let claims = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| tokens.verify(statebench::token::from_authorization(v)).ok());
    match claims {
        Some(c) => (StatusCode::OK, format!("Welcome back, {}", c.name)),
        None => (StatusCode::FORBIDDEN, "Forbidden".into()),
    }
}
