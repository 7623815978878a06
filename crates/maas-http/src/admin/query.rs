//! Query parameters as Synapse's admin servlets read them (`parse_integer`, `parse_string`,
//! `parse_enum`, `parse_boolean`): the first value of each name, unknown names ignored, and
//! Synapse's errcodes and wording for a value that doesn't parse.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::HttpError;

/// The request's query parameters, first value of each name.
pub(crate) struct SynapseQuery(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for SynapseQuery {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| HttpError::invalid_param(e.body_text()))?;
        let mut params = HashMap::new();
        for (name, value) in pairs.0 {
            params.entry(name).or_insert(value);
        }
        Ok(SynapseQuery(params))
    }
}

impl SynapseQuery {
    /// A string parameter, when given.
    pub(crate) fn string(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A non-negative integer, `default` when absent.
    pub(crate) fn integer(&self, name: &str, default: u64) -> Result<u64, HttpError> {
        Ok(self.optional_integer(name)?.unwrap_or(default))
    }

    /// A non-negative integer, when given.
    pub(crate) fn optional_integer(&self, name: &str) -> Result<Option<u64>, HttpError> {
        let Some(value) = self.0.get(name) else {
            return Ok(None);
        };
        // Python's `int()` takes surrounding blanks and a sign.
        let integer: i128 = value.trim().parse().map_err(|_| {
            HttpError::invalid_param(format!("Query parameter {name} must be an integer"))
        })?;
        if integer < 0 {
            return Err(HttpError::invalid_param(format!(
                "Query parameter {name} must be a positive integer."
            )));
        }
        u64::try_from(integer).map(Some).map_err(|_| {
            HttpError::invalid_param(format!("Query parameter {name} must be an integer"))
        })
    }

    /// One of `allowed`, `default` when absent.
    pub(crate) fn one_of<'a>(
        &'a self,
        name: &str,
        allowed: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str, HttpError> {
        let Some(value) = self.string(name) else {
            return Ok(default);
        };
        if allowed.contains(&value) {
            return Ok(value);
        }
        let listed: Vec<String> = allowed.iter().map(|v| format!("'{v}'")).collect();
        Err(HttpError::invalid_param(format!(
            "Query parameter '{name}' must be one of [{}]",
            listed.join(", ")
        )))
    }

    /// `dir`: whether it asks for backwards (`b`), `default` when absent.
    pub(crate) fn backwards(&self, default: bool) -> Result<bool, HttpError> {
        let default = if default { "b" } else { "f" };
        Ok(self.one_of("dir", &["b", "f"], default)? == "b")
    }

    /// `true` or `false`, when given.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, HttpError> {
        match self.string(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(HttpError::invalid_param(format!(
                "Boolean query parameter '{name}' must be one of ['true', 'false']"
            ))),
        }
    }
}
