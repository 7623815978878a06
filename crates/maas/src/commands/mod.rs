//! The client commands (`maas tenant|user|token|media …`): each turns its arguments into one or a
//! few operator API calls and prints the answer, readable by default or as JSON (`--json`).

mod archive;
mod media;
mod output;
mod tenant;
mod token;
mod user;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::{Command, GlobalArgs};
use crate::operator_client::{OperatorClient, encode};
use crate::settings::{self, Overrides};

/// What every client command needs.
pub struct Ctx {
    pub client: OperatorClient,
    pub json: bool,
}

impl Ctx {
    /// Prints `value` as JSON in `--json` mode, else the readable text `render` makes of it.
    fn print<T: DeserializeOwned>(
        &self,
        value: &Value,
        render: impl FnOnce(T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            output::print_json(value);
            return Ok(());
        }
        print!("{}", render(view(value)?));
        Ok(())
    }
}

/// Runs a client command (everything but `serve`).
pub async fn run(global: &GlobalArgs, command: Command) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: global.config.clone(),
        data_dir: global.data_dir.clone(),
        listen: None,
        operator_listen: None,
    };
    // Refusals that need no server come first, so `delete` without `--yes` never connects.
    refuse_unconfirmed(&command)?;
    let config = settings::load(&overrides)?;
    let client = OperatorClient::connect(global.url.as_deref(), &config)?;
    let ctx = Ctx {
        client,
        json: global.json,
    };
    match command {
        Command::Tenant(command) => tenant::run(&ctx, command).await,
        Command::User(command) => user::run(&ctx, command).await,
        Command::Token(command) => token::run(&ctx, command).await,
        Command::Media(command) => media::run(&ctx, command).await,
        Command::Serve(_) => unreachable!("`serve` is dispatched by main"),
    }
}

fn refuse_unconfirmed(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Tenant(crate::cli::TenantCommand::Delete(args)) if !args.yes => anyhow::bail!(
            "refusing to delete tenant {} without --yes: this removes all its users, rooms and data for good",
            args.server_name
        ),
        Command::User(crate::cli::UserCommand::Deactivate(args)) if !args.yes => anyhow::bail!(
            "refusing to deactivate {} on {} without --yes: a deactivated user can never log in again",
            args.user.localpart,
            args.user.server_name
        ),
        _ => Ok(()),
    }
}

/// Reads an API answer into the shape a command displays.
fn view<T: DeserializeOwned>(value: &Value) -> anyhow::Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|error| anyhow::anyhow!("unexpected answer from the server ({error}): {value}"))
}

/// `/tenants/{server_name}` with the name encoded.
fn tenant_path(server_name: &str) -> String {
    format!("/tenants/{}", encode(server_name))
}
