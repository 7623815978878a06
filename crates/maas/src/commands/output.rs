//! Shared output helpers of the CLI commands: aligned tables, `key: value` blocks, `--json`
//! printing and timestamp formatting. Commands build rows; this module lays them out.

use serde_json::Value;

/// Prints the API's JSON answer, pretty-printed.
pub fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // A `Value` always serialises; keep a plain fallback rather than a panic path.
        Err(_) => println!("{value}"),
    }
}

/// Renders rows under a header, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        out.push_str(&render_row(row, &widths));
        out.push('\n');
    }
    out
}

fn render_row(row: &[String], widths: &[usize]) -> String {
    let cells: Vec<String> = row
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    cells.join("  ").trim_end().to_owned()
}

/// Renders `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(key, _)| key.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(&format!("{label:<width$} {value}\n"));
    }
    out
}

/// A millisecond Unix timestamp as `YYYY-MM-DD HH:MM UTC`.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (secs_of_day / 3600, secs_of_day % 3600 / 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
/// Hand-written because the binary has no date crate and needs nothing else from one.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Bytes in the largest binary unit they fill (`512 B`, `1.5 KiB`, `50 MiB`), the units the
/// size flags take, with one decimal unless whole.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    // Tenths, rounded, in integers (exact for any u64); a value that rounds up to 1024 of a
    // unit reads as 1 of the next.
    let tenths_of = |unit: usize| {
        let scale = 1u128 << (10 * unit);
        (u128::from(bytes) * 10 + scale / 2) / scale
    };
    let mut tenths = tenths_of(unit);
    if tenths >= 10_240 && unit + 1 < UNITS.len() {
        unit += 1;
        tenths = tenths_of(unit);
    }
    if tenths % 10 == 0 {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// `"yes"`/`"no"` for a JSON boolean field (missing counts as false).
pub fn yes_no(value: bool) -> String {
    if value { "yes".into() } else { "no".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(timestamp(-1000), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned()],
            vec!["bbb".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["K", "V"], &rows),
            "K    V\na    long value\nbbb  x\n"
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(50 << 20), "50 MiB");
        assert_eq!(size((1 << 30) + (1 << 29)), "1.5 GiB");
        // Rounded to tenths, into the next unit when that reaches it.
        assert_eq!(size(1126), "1.1 KiB");
        assert_eq!(size((1 << 20) - 1), "1 MiB");
        assert_eq!(size(u64::MAX), "16 EiB");
    }

    #[test]
    fn fields_align_values() {
        let out = fields(&[("a", "1".to_owned()), ("long", "2".to_owned())]);
        assert_eq!(out, "a:    1\nlong: 2\n");
    }
}
