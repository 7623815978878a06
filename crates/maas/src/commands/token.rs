//! `maas token …`: create and list the registration tokens of one tenant (used when its
//! registration policy is `token`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::output::{now_ms, table, timestamp};
use super::{Ctx, tenant_path};
use crate::cli::{TokenCommand, TokenCreateArgs};

/// The operator API's registration token object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegistrationToken {
    token: String,
    uses_allowed: Option<u64>,
    pending: u64,
    completed: u64,
    expiry_time: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenList {
    registration_tokens: Vec<RegistrationToken>,
}

pub async fn run(ctx: &Ctx, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(ctx, args).await,
        TokenCommand::List(args) => list(ctx, &args.server_name).await,
    }
}

fn tokens_path(server_name: &str) -> String {
    format!("{}/registration_tokens", tenant_path(server_name))
}

async fn create(ctx: &Ctx, args: TokenCreateArgs) -> anyhow::Result<()> {
    let body = create_body(&args, now_ms())?;
    let answer = ctx
        .client
        .post(&tokens_path(&args.server_name), &body)
        .await?;
    ctx.print(&answer, |token: RegistrationToken| {
        format!(
            "Created registration token {} (uses: {}, expires: {})\n",
            token.token,
            allowed(&token),
            expiry(&token, now_ms())
        )
    })
}

/// `--expires-in` is relative for convenience; the API takes an absolute time in ms.
fn create_body(args: &TokenCreateArgs, now_ms: i64) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if let Some(token) = &args.token {
        body.insert("token".into(), json!(token));
    }
    if let Some(uses) = args.uses {
        body.insert("uses_allowed".into(), json!(uses));
    }
    if let Some(secs) = args.expires_in {
        let expiry = i64::try_from(secs)
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .and_then(|ms| ms.checked_add(now_ms))
            .ok_or_else(|| anyhow::anyhow!("--expires-in {secs} is too far in the future"))?;
        body.insert("expiry_time".into(), json!(expiry));
    }
    Ok(Value::Object(body))
}

async fn list(ctx: &Ctx, server_name: &str) -> anyhow::Result<()> {
    let answer = ctx.client.get(&tokens_path(server_name)).await?;
    ctx.print(&answer, |list: TokenList| {
        render_list(&list.registration_tokens, now_ms())
    })
}

fn render_list(tokens: &[RegistrationToken], now_ms: i64) -> String {
    if tokens.is_empty() {
        return "No registration tokens.\n".into();
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.token.clone(),
                format!("{}/{}", t.completed, allowed(t)),
                t.pending.to_string(),
                expiry(t, now_ms),
            ]
        })
        .collect();
    table(&["TOKEN", "USED", "PENDING", "EXPIRES"], &rows)
}

fn allowed(token: &RegistrationToken) -> String {
    token
        .uses_allowed
        .map_or_else(|| "unlimited".into(), |n| n.to_string())
}

fn expiry(token: &RegistrationToken, now_ms: i64) -> String {
    match token.expiry_time {
        None => "never".into(),
        Some(at) if at <= now_ms => format!("{} (expired)", timestamp(at)),
        Some(at) => timestamp(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_becomes_an_absolute_time() {
        let args = TokenCreateArgs {
            server_name: "x".into(),
            token: None,
            uses: Some(2),
            expires_in: Some(60),
        };
        assert_eq!(
            create_body(&args, 1_000).expect("body"),
            json!({"uses_allowed": 2, "expiry_time": 61_000})
        );
        let args = TokenCreateArgs {
            expires_in: Some(u64::MAX),
            ..args
        };
        assert!(create_body(&args, 1_000).is_err());
    }

    #[test]
    fn list_marks_expired_tokens() {
        let tokens = vec![
            RegistrationToken {
                token: "abc".into(),
                uses_allowed: Some(3),
                completed: 1,
                ..Default::default()
            },
            RegistrationToken {
                token: "old".into(),
                expiry_time: Some(0),
                ..Default::default()
            },
        ];
        let out = render_list(&tokens, 10);
        assert!(out.contains("abc    1/3          0        never"), "{out}");
        assert!(out.contains("(expired)"));
    }
}
