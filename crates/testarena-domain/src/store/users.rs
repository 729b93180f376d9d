//! Users and their API tokens.

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StoreError, StoreResult, conflict_on_unique, now};
use crate::models::{TokenRow, UserRow};
use crate::schema::{api_tokens, users};

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub password_hash: Option<String>,
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
}

/// Creates a user; a taken username is a [`StoreError::Conflict`].
pub fn create_user(
    conn: &mut DbConnection,
    username: &str,
    password_hash: &str,
    is_admin: bool,
) -> StoreResult<UserRow> {
    per_backend!(conn, |c| diesel::insert_into(users::table)
        .values((
            users::username.eq(username),
            users::password_hash.eq(password_hash),
            users::is_admin.eq(is_admin),
            users::created_at.eq(now()),
        ))
        .returning(UserRow::as_returning())
        .get_result(c))
    .map_err(|e| conflict_on_unique(e, || format!("user {username:?} exists already")))
}

pub fn user_by_name(conn: &mut DbConnection, username: &str) -> StoreResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn user_by_id(conn: &mut DbConnection, id: i32) -> StoreResult<Option<UserRow>> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Every user, by name.
pub fn list_users(conn: &mut DbConnection) -> StoreResult<Vec<UserRow>> {
    Ok(users::table
        .order(users::username)
        .select(UserRow::as_select())
        .load(conn)?)
}

/// Changes a user. A change that would demote or disable the last enabled
/// admin is a [`StoreError::Conflict`]; the check and the write are one
/// immediate transaction, so two concurrent demotions cannot both pass.
pub fn update_user(
    conn: &mut DbConnection,
    id: i32,
    changes: &UserChanges,
) -> StoreResult<UserRow> {
    crate::db::write(conn, |conn| {
        let user =
            user_by_id(conn, id)?.ok_or_else(|| StoreError::not_found("user", id.to_string()))?;
        if changes == &UserChanges::default() {
            return Ok(user);
        }
        let demotes = changes.is_admin == Some(false) || changes.disabled == Some(true);
        if demotes {
            keeps_an_admin(conn, &user)?;
        }
        Ok(per_backend!(conn, |c| diesel::update(
            users::table.find(id)
        )
        .set(changes)
        .returning(UserRow::as_returning())
        .get_result(c))?)
    })
}

/// Deletes a user and their tokens; their queues keep the owner's name.
/// The last enabled admin is a [`StoreError::Conflict`], checked in the
/// transaction that deletes.
pub fn delete_user(conn: &mut DbConnection, id: i32) -> StoreResult<UserRow> {
    crate::db::write(conn, |conn| {
        let user =
            user_by_id(conn, id)?.ok_or_else(|| StoreError::not_found("user", id.to_string()))?;
        keeps_an_admin(conn, &user)?;
        Ok(per_backend!(conn, |c| diesel::delete(
            users::table.find(id)
        )
        .returning(UserRow::as_returning())
        .get_result(c))?)
    })
}

/// Refuses to take `user` away from the enabled admins when it is the last.
fn keeps_an_admin(conn: &mut DbConnection, user: &UserRow) -> StoreResult<()> {
    if user.is_admin && !user.disabled && count_active_admins(conn)? <= 1 {
        return Err(StoreError::Conflict(
            "this is the last enabled admin".into(),
        ));
    }
    Ok(())
}

/// How many enabled admins there are (the last one must not be removed).
pub fn count_active_admins(conn: &mut DbConnection) -> StoreResult<i64> {
    Ok(users::table
        .filter(users::is_admin.eq(true))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}

/// Stores a token's hash (never its secret).
pub fn create_token(
    conn: &mut DbConnection,
    user_id: i32,
    name: &str,
    token_hash: &str,
    prefix: &str,
) -> StoreResult<TokenRow> {
    per_backend!(conn, |c| diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash),
            api_tokens::prefix.eq(prefix),
            api_tokens::created_at.eq(now()),
        ))
        .returning(TokenRow::as_returning())
        .get_result(c))
    .map_err(|e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        ) => StoreError::not_found("user", user_id.to_string()),
        other => conflict_on_unique(other, || "token exists already".to_owned()),
    })
}

/// The token with this hash and its user, whatever the user's state: the
/// caller refuses disabled users.
pub fn token_user(
    conn: &mut DbConnection,
    token_hash: &str,
) -> StoreResult<Option<(TokenRow, UserRow)>> {
    Ok(api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .select((TokenRow::as_select(), UserRow::as_select()))
        .get_result(conn)
        .optional()?)
}

/// Notes that a token was used. Bookkeeping only: a database that is full
/// or stays busy skips the note (logged) instead of failing the request
/// the token signs.
pub fn touch_token(conn: &mut DbConnection, id: i32, at: NaiveDateTime) -> StoreResult<()> {
    let result = diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(at))
        .execute(conn)
        .map_err(StoreError::from);
    match result {
        Ok(_) => Ok(()),
        Err(e @ (StoreError::Full(_) | StoreError::Busy(_))) => {
            tracing::warn!(token.id = id, error = %e, "token use not recorded");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn get_token(conn: &mut DbConnection, id: i32) -> StoreResult<Option<TokenRow>> {
    Ok(api_tokens::table
        .find(id)
        .select(TokenRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Tokens of one user, or of everyone, newest first.
pub fn list_tokens(conn: &mut DbConnection, user_id: Option<i32>) -> StoreResult<Vec<TokenRow>> {
    let mut query = api_tokens::table.select(TokenRow::as_select()).into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(api_tokens::user_id.eq(user_id));
    }
    Ok(query.order(api_tokens::id.desc()).load(conn)?)
}

/// Revokes a token: it stops working at once.
pub fn delete_token(conn: &mut DbConnection, id: i32) -> StoreResult<TokenRow> {
    per_backend!(conn, |c| diesel::delete(api_tokens::table.find(id))
        .returning(TokenRow::as_returning())
        .get_result(c))
    .optional()?
    .ok_or_else(|| StoreError::not_found("token", id.to_string()))
}
