//! `maas user …`: create, list, show, reset the password of and deactivate the users of one
//! tenant through the operator API.

use std::io::BufRead;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::output::{fields, print_json, table, timestamp, yes_no};
use super::{Ctx, tenant_path, view};
use crate::cli::{PasswordArgs, UserCommand, UserCreateArgs, UserRef, UserResetPasswordArgs};
use crate::operator_client::encode;

/// Users fetched per request when listing.
const PAGE_SIZE: u32 = 100;

/// The operator API's user object, as far as the CLI shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    user_id: String,
    admin: bool,
    deactivated: bool,
    guest: bool,
    displayname: Option<String>,
    created_ts: i64,
    /// Present only when the server generated the password.
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserPage {
    users: Vec<Value>,
    next_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordReset {
    user_id: String,
    password: Option<String>,
}

pub async fn run(ctx: &Ctx, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => create(ctx, args).await,
        UserCommand::List(args) => list(ctx, &args.server_name).await,
        UserCommand::Show(user) => show(ctx, &user).await,
        UserCommand::ResetPassword(args) => reset_password(ctx, args).await,
        // `--yes` was checked before connecting.
        UserCommand::Deactivate(args) => deactivate(ctx, &args.user).await,
    }
}

fn users_path(server_name: &str) -> String {
    format!("{}/users", tenant_path(server_name))
}

fn user_path(user: &UserRef) -> String {
    format!(
        "{}/{}",
        users_path(&user.server_name),
        encode(&user.localpart)
    )
}

async fn create(ctx: &Ctx, args: UserCreateArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    body.insert("localpart".into(), json!(args.user.localpart));
    if let Some(password) = read_password(&args.password)? {
        body.insert("password".into(), json!(password));
    }
    if args.admin {
        body.insert("admin".into(), json!(true));
    }
    let answer = ctx
        .client
        .post(&users_path(&args.user.server_name), &Value::Object(body))
        .await?;
    ctx.print(&answer, |user: User| {
        let role = if user.admin { " (tenant admin)" } else { "" };
        let mut out = format!("Created user {}{role}\n", user.user_id);
        if let Some(password) = user.password {
            out.push_str(&format!("Password: {password}\n"));
        }
        out
    })
}

/// The password given by flag or stdin; `None` lets the server generate one.
fn read_password(args: &PasswordArgs) -> anyhow::Result<Option<String>> {
    if let Some(password) = &args.password {
        return Ok(Some(password.clone()));
    }
    if !args.password_stdin {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("--password-stdin: no password on stdin");
    }
    Ok(Some(password.to_owned()))
}

/// Follows `next_from` until the last page; `--json` prints all users as one `{"users": […]}`.
async fn list(ctx: &Ctx, server_name: &str) -> anyhow::Result<()> {
    let users = fetch_all_users(ctx, server_name).await?;
    if ctx.json {
        print_json(&json!({ "users": users }));
        return Ok(());
    }
    let users: Vec<User> = users.iter().map(view).collect::<anyhow::Result<_>>()?;
    print!("{}", render_list(&users));
    Ok(())
}

async fn fetch_all_users(ctx: &Ctx, server_name: &str) -> anyhow::Result<Vec<Value>> {
    let mut users = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!("{}?limit={PAGE_SIZE}", users_path(server_name));
        if let Some(from) = &from {
            path.push_str(&format!("&from={}", encode(from)));
        }
        let page: UserPage = view(&ctx.client.get(&path).await?)?;
        users.extend(page.users);
        // A server that repeats its cursor would loop forever; stop instead.
        match page.next_from {
            Some(next) if from.as_ref() != Some(&next) => from = Some(next),
            _ => return Ok(users),
        }
    }
}

fn render_list(users: &[User]) -> String {
    if users.is_empty() {
        return "No users.\n".into();
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.user_id.clone(),
                yes_no(u.admin),
                status_of(u).into(),
                u.displayname.clone().unwrap_or_default(),
                timestamp(u.created_ts),
            ]
        })
        .collect();
    table(
        &["USER ID", "ADMIN", "STATUS", "DISPLAY NAME", "CREATED"],
        &rows,
    )
}

fn status_of(user: &User) -> &'static str {
    match (user.deactivated, user.guest) {
        (true, _) => "deactivated",
        (false, true) => "guest",
        (false, false) => "active",
    }
}

async fn show(ctx: &Ctx, user: &UserRef) -> anyhow::Result<()> {
    let answer = ctx.client.get(&user_path(user)).await?;
    ctx.print(&answer, |user: User| {
        fields(&[
            ("User id", user.user_id.clone()),
            ("Tenant admin", yes_no(user.admin)),
            ("Status", status_of(&user).into()),
            ("Display name", user.displayname.clone().unwrap_or_default()),
            ("Created", timestamp(user.created_ts)),
        ])
    })
}

async fn reset_password(ctx: &Ctx, args: UserResetPasswordArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(password) = read_password(&args.password)? {
        body.insert("password".into(), json!(password));
    }
    body.insert("logout_devices".into(), json!(!args.keep_devices));
    let path = format!("{}/reset_password", user_path(&args.user));
    let answer = ctx.client.post(&path, &Value::Object(body)).await?;
    ctx.print(&answer, |reset: PasswordReset| {
        let devices = if args.keep_devices {
            "its devices stay logged in"
        } else {
            "all its devices were logged out"
        };
        let mut out = format!("Password of {} reset; {devices}.\n", reset.user_id);
        if let Some(password) = reset.password {
            out.push_str(&format!("New password: {password}\n"));
        }
        out
    })
}

async fn deactivate(ctx: &Ctx, user: &UserRef) -> anyhow::Result<()> {
    let path = format!("{}/deactivate", user_path(user));
    let answer = ctx.client.post(&path, &json!({})).await?;
    ctx.print(&answer, |user: User| {
        format!("Deactivated {}.\n", user.user_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_status_and_roles() {
        let users = vec![
            User {
                user_id: "@admin:x".into(),
                admin: true,
                ..User::default()
            },
            User {
                user_id: "@gone:x".into(),
                deactivated: true,
                ..User::default()
            },
        ];
        let out = render_list(&users);
        assert!(out.starts_with("USER ID"));
        assert!(out.contains("@admin:x  yes    active"));
        assert!(out.contains("@gone:x   no     deactivated"));
    }

    #[test]
    fn paths_are_encoded() {
        let user = UserRef {
            server_name: "x.test".into(),
            localpart: "a/b".into(),
        };
        assert_eq!(user_path(&user), "/tenants/x.test/users/a%2Fb");
    }
}
