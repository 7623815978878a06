//! `sqlx::migrate!` embeds the migration files at compile time, but cargo doesn't know they
//! are inputs: without this, a new or changed migration wouldn't rebuild the crate and the
//! binary would silently carry the old set.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
