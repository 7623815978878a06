//! HTTP integration tests of `maas serve`: each test starts the real binary on an ephemeral
//! port with its own data directory and talks to it over HTTP (see `harness`).

mod account;
mod cli;
mod devices;
mod discovery;
mod e2ee_backup;
mod e2ee_cross_signing;
mod e2ee_keys;
mod e2ee_sdk;
mod e2ee_support;
mod e2ee_to_device;
mod errors;
mod export;
mod group_commit;
mod harness;
mod isolation;
mod login;
mod membership;
mod messages;
mod operator;
mod persistence;
mod profile;
mod push_rules;
mod rate_limit;
mod registration;
mod registration_tokens;
mod room_directory;
mod room_events;
mod room_isolation;
mod room_scale;
mod room_signatures;
mod room_support;
mod rooms;
mod sdk;
mod sdk_rooms;
mod sync;
