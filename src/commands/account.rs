//! Who talks to the server: login and logout (the saved token), tokens,
//! users (admins), `whoami`, and the server's health.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};

use testarena_wire::api::{CreateToken, CreateUser, CreatedToken, Health, Token, UpdateUser, User};

use super::{Ctx, Error, Exit, Result, read_password};
use crate::args::{Login, Tokens, Users};
use crate::client::{Auth, Client, ClientError};
use crate::config::ConfigError;
use crate::output::{self, Table};

pub fn health(ctx: &mut Ctx) -> Result<Exit> {
    let health: Health = ctx.client.get("/api/v1/health")?;
    if ctx.out.json {
        ctx.out.json_value(&health)?;
    } else {
        let color = if health.status == "ok" { "32" } else { "31" };
        let status = ctx.out.paint(color, &health.status);
        writeln!(
            ctx.out,
            "{} {status}, database {}, version {}",
            ctx.url, health.database, health.version
        )?;
        let mut t = Table::new(&["WORKER", "SLOTS", "LAST SEEN", "RUNNING"]);
        for w in &health.workers {
            t.row(vec![
                w.id.clone(),
                w.slots.to_string(),
                output::time(w.last_seen),
                w.running.join(" "),
            ]);
        }
        if t.is_empty() {
            writeln!(ctx.out, "no workers")?;
        } else {
            t.print(&mut ctx.out)?;
        }
    }
    Ok(if health.status == "ok" {
        Exit::Success
    } else {
        Exit::Error
    })
}

pub fn whoami(ctx: &mut Ctx) -> Result<Exit> {
    let me: User = ctx.client.get("/api/v1/me")?;
    if ctx.out.json {
        ctx.out.json_value(&me)?;
    } else {
        let role = if me.is_admin { " (admin)" } else { "" };
        writeln!(ctx.out, "{}{role} at {}", me.username, ctx.url)?;
    }
    Ok(Exit::Success)
}

pub fn tokens(ctx: &mut Ctx, cmd: Tokens) -> Result<Exit> {
    match cmd {
        Tokens::List { all } => {
            let path = if all {
                "/api/v1/tokens?all=true"
            } else {
                "/api/v1/tokens"
            };
            let tokens: Vec<Token> = ctx.client.get(path)?;
            if ctx.out.json {
                ctx.out.json_value(&tokens)?;
                return Ok(Exit::Success);
            }
            let mut t = Table::new(&["ID", "NAME", "PREFIX", "USER", "CREATED", "LAST USED"]);
            for tok in &tokens {
                t.row(vec![
                    tok.id.to_string(),
                    tok.name.clone(),
                    tok.prefix.clone(),
                    tok.user_id.to_string(),
                    output::time(tok.created_at),
                    output::opt_time(tok.last_used_at),
                ]);
            }
            t.print(&mut ctx.out)?;
        }
        Tokens::Create { name } => {
            let token: CreatedToken = ctx
                .client
                .post("/api/v1/tokens", Some(&CreateToken { name }))?;
            if ctx.out.json {
                ctx.out.json_value(&token)?;
            } else {
                writeln!(ctx.out, "{}", token.secret)?;
                eprintln!(
                    "token {} ({:?}) created; its secret above is shown only now",
                    token.token.id, token.token.name
                );
            }
        }
        Tokens::Revoke { id } => {
            ctx.client.delete(&format!("/api/v1/tokens/{id}"))?;
            if ctx.out.json {
                ctx.out
                    .json_line(&serde_json::json!({"id": id, "revoked": true}))?;
            } else {
                writeln!(ctx.out, "token {id} revoked")?;
            }
        }
    }
    Ok(Exit::Success)
}

/// A user's id from their name (or their id, for a name nobody has).
fn user_id(client: &Client, name: &str) -> Result<i32> {
    let users: Vec<User> = client.get("/api/v1/users")?;
    users
        .iter()
        .find(|u| u.username == name)
        .map(|u| u.id)
        .or_else(|| {
            name.parse()
                .ok()
                .filter(|id| users.iter().any(|u| u.id == *id))
        })
        .ok_or_else(|| Error::Usage(format!("no user {name:?}")))
}

pub fn users(ctx: &mut Ctx, cmd: Users) -> Result<Exit> {
    let (name, change) = match cmd {
        Users::List => {
            let users: Vec<User> = ctx.client.get("/api/v1/users")?;
            if ctx.out.json {
                ctx.out.json_value(&users)?;
                return Ok(Exit::Success);
            }
            let mut t = Table::new(&["ID", "USERNAME", "ADMIN", "DISABLED", "CREATED"]);
            let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
            for u in &users {
                t.row(vec![
                    u.id.to_string(),
                    u.username.clone(),
                    yes(u.is_admin),
                    yes(u.disabled),
                    output::time(u.created_at),
                ]);
            }
            t.print(&mut ctx.out)?;
            return Ok(Exit::Success);
        }
        Users::Add {
            username,
            admin,
            password,
        } => {
            let password = read_password(password.password_stdin, "New password: ", true)?;
            let body = CreateUser {
                username,
                password,
                is_admin: admin,
            };
            let user: User = ctx.client.post("/api/v1/users", Some(&body))?;
            return show_user(ctx, &user, "added");
        }
        Users::Delete { username } => {
            let id = user_id(&ctx.client, &username)?;
            ctx.client.delete(&format!("/api/v1/users/{id}"))?;
            if ctx.out.json {
                ctx.out
                    .json_line(&serde_json::json!({"id": id, "deleted": true}))?;
            } else {
                writeln!(ctx.out, "user {username} deleted")?;
            }
            return Ok(Exit::Success);
        }
        Users::Passwd { username, password } => {
            let password = read_password(password.password_stdin, "New password: ", true)?;
            let change = UpdateUser {
                password: Some(password),
                ..UpdateUser::default()
            };
            (username, change)
        }
        Users::Disable { username } => (username, disabled(true)),
        Users::Enable { username } => (username, disabled(false)),
        Users::Admin { username, revoke } => {
            let change = UpdateUser {
                is_admin: Some(!revoke),
                ..UpdateUser::default()
            };
            (username, change)
        }
    };
    let id = user_id(&ctx.client, &name)?;
    let user: User = ctx.client.patch(&format!("/api/v1/users/{id}"), &change)?;
    show_user(ctx, &user, "changed")
}

fn disabled(disabled: bool) -> UpdateUser {
    UpdateUser {
        disabled: Some(disabled),
        ..UpdateUser::default()
    }
}

fn show_user(ctx: &mut Ctx, user: &User, what: &str) -> Result<Exit> {
    if ctx.out.json {
        ctx.out.json_value(user)?;
    } else {
        let mut flags = Vec::new();
        if user.is_admin {
            flags.push("admin");
        }
        if user.disabled {
            flags.push("disabled");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", flags.join(", "))
        };
        writeln!(ctx.out, "user {} {what}{flags}", user.username)?;
    }
    Ok(Exit::Success)
}

/// The user to log in as: `--user`, else asked on a terminal, else `$USER`.
fn login_name(given: Option<&str>, password_stdin: bool) -> Result<String> {
    if let Some(name) = given {
        return Ok(name.to_owned());
    }
    let default = std::env::var("USER").ok().filter(|u| !u.is_empty());
    if !password_stdin && io::stdin().is_terminal() {
        let shown = default
            .as_deref()
            .map(|d| format!(" [{d}]"))
            .unwrap_or_default();
        eprint!("Username{shown}: ");
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Error::io("reading the username"))?;
        if let Some(name) = Some(line.trim()).filter(|l| !l.is_empty()) {
            return Ok(name.to_owned());
        }
    }
    default.ok_or_else(|| Error::Usage("give the username with --user".into()))
}

pub fn login(ctx: &mut Ctx, args: &Login) -> Result<Exit> {
    let path = ctx.config_path.clone().ok_or(ConfigError::NoDir)?;
    let username = login_name(args.user.as_deref(), args.password.password_stdin)?;
    let password = read_password(args.password.password_stdin, "Password: ", false)?;
    let name = args.token_name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("testarena-cli@{}", host.trim())
    });
    let basic = Client::new(&ctx.url, Auth::Basic { username, password });
    let token: CreatedToken = basic.post("/api/v1/tokens", Some(&CreateToken { name }))?;
    let me: User = Client::new(&ctx.url, Auth::Bearer(token.secret.clone())).get("/api/v1/me")?;
    let mut config = ctx.config.clone();
    config.url = Some(ctx.url.clone());
    config.token = Some(token.secret);
    config.token_id = Some(token.token.id);
    config.username = Some(me.username.clone());
    config.save(&path)?;
    if ctx.out.json {
        ctx.out.json_value(&me)?;
    } else {
        writeln!(
            ctx.out,
            "logged in to {} as {}; token {:?} saved in {}",
            ctx.url,
            me.username,
            token.token.name,
            path.display()
        )?;
    }
    Ok(Exit::Success)
}

pub fn logout(ctx: &mut Ctx) -> Result<Exit> {
    let path = ctx.config_path.clone().ok_or(ConfigError::NoDir)?;
    let mut config = ctx.config.clone();
    let Some(token) = config.token.take() else {
        writeln!(ctx.out, "not logged in ({} holds no token)", path.display())?;
        return Ok(Exit::Success);
    };
    if let Some(id) = config.token_id.take() {
        // The token belongs to the server it was made on.
        let url = config.url.clone().unwrap_or_else(|| ctx.url.clone());
        let client = Client::new(&url, Auth::Bearer(token));
        match client.delete(&format!("/api/v1/tokens/{id}")) {
            Ok(()) => {}
            // Revoked already, or its user is gone: nothing to undo.
            Err(ClientError::Api {
                status: 401 | 404, ..
            }) => {}
            Err(e) => eprintln!("warning: the token stays valid on the server: {e}"),
        }
    }
    config.username = None;
    config.save(&path)?;
    if ctx.out.json {
        ctx.out
            .json_line(&serde_json::json!({"logged_out": true, "config": path}))?;
    } else {
        let path = path.display();
        writeln!(ctx.out, "logged out; the token is removed from {path}")?;
    }
    Ok(Exit::Success)
}
