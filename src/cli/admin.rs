//! `init` (the first run) and `client add` / `client list`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use exdisco::config::Config;
use exdisco::connect;
use exdisco::secrets::MasterKey;
use exdisco::store::Store;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{ClientCommand, StateArgs};

/// The configuration: file, environment, then these flags. Invalid: one line, exit 64.
pub fn load_config(state: &StateArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(state.config.as_deref(), std::env::vars())?;
    if let Some(db) = &state.db {
        config.store.path.clone_from(db);
    }
    if let Some(key_file) = &state.key_file {
        config.store.key_file.clone_from(key_file);
    }
    Ok(config)
}

/// The key: `EXDISCO_KEY`, or the key file.
pub fn load_key(config: &Config) -> anyhow::Result<MasterKey> {
    match std::env::var("EXDISCO_KEY") {
        Ok(text) => Ok(MasterKey::from_base64(&text).context("EXDISCO_KEY")?),
        Err(_) => MasterKey::from_file(&config.store.key_file).with_context(|| {
            format!(
                "no key at {}: run `exdisco init` first",
                config.store.key_file.display()
            )
        }),
    }
}

/// `exdisco serve`: the configuration with the flags applied, the key, then the daemon.
pub async fn serve(args: crate::cli::ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.state)?;
    args.network.apply(&mut config.discovery)?;
    if let Some(listen) = args.listen {
        config.api.listen = listen;
    }
    if let Some(url) = &args.queue {
        config.queue.redis_url = Some(url.clone());
    }
    if args.log_json {
        config.log.format = exdisco::config::LogFormat::Json;
    }
    crate::telemetry::set_format(config.log.format);
    let key = load_key(&config)?;
    crate::daemon::serve(config, key).await
}

/// Creates the key (unless there is one) and the database.
pub async fn init(state: &StateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(state)?;
    let key_file = &config.store.key_file;
    let mut out = std::io::stdout().lock();
    if std::env::var_os("EXDISCO_KEY").is_some() {
        writeln!(out, "key: from EXDISCO_KEY")?;
    } else if key_file.exists() {
        MasterKey::from_file(key_file)
            .with_context(|| format!("{} is not a key", key_file.display()))?;
        writeln!(out, "key: {} (kept)", key_file.display())?;
    } else {
        MasterKey::create_file(key_file)
            .with_context(|| format!("cannot create {}", key_file.display()))?;
        writeln!(
            out,
            "key: {} (created; keep it secret and backed up)",
            key_file.display()
        )?;
    }
    let store = open_store(&config).await?;
    // The database records which key seals it: an instance with another refuses to start.
    store
        .check_key(&load_key(&config)?.check_value())
        .await
        .with_context(|| Store::describe(&config.store))?;
    writeln!(out, "database: {}", Store::describe(&config.store))?;
    Ok(ExitCode::SUCCESS)
}

/// `client add` and `client list`.
pub async fn client(command: ClientCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            public,
            json,
            state,
        } => {
            let store = open_store(&load_config(&state)?).await?;
            if public {
                let client_id = connect::add_public_client(&store, &name, redirect_uris).await?;
                if json {
                    let answer = json!({ "client_id": client_id, "name": name, "public": true });
                    writeln!(out, "{answer}")?;
                } else {
                    writeln!(out, "client_id      {client_id}")?;
                    writeln!(out, "(a public client: no secret; it must use PKCE)")?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let client = connect::add_client(&store, &name, redirect_uris).await?;
            let secret = client.client_secret.expose_secret();
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({ "client_id": client.client_id, "client_secret": secret, "name": name })
                )?;
            } else {
                writeln!(out, "client_id      {}", client.client_id)?;
                writeln!(out, "client_secret  {secret}")?;
                writeln!(out, "(the secret is shown only now; it is stored hashed)")?;
            }
        }
        ClientCommand::List { json, state } => {
            let store = open_store(&load_config(&state)?).await?;
            let clients = store.list_clients().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&clients)?)?;
            } else {
                for client in clients {
                    writeln!(
                        out,
                        "{}  {}  {}",
                        client.client_id,
                        client.name,
                        client.redirect_uris.join(" ")
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The store the configuration names (the SQLite file, or PostgreSQL at `store.url`).
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.store, exdisco::clock::Clock::system())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                Store::describe(&config.store)
            )
        })
}
