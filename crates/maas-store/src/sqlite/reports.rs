//! `ReportStore` on a tenant's SQLite database (tables in the `administration` migration), and
//! the admin API's reads of other tables: federation destinations and rooms by size.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteTenantStore;
use super::util::{to_i64, to_u64};
use crate::{
    DestinationRoom, NewReport, ReportKind, ReportQuery, ReportRecord, ReportStore, Result,
    RoomSize, StoreError, UploaderUsage,
};

/// The columns `report_from_row` reads: the report and the reported event's sender.
macro_rules! select_reports {
    ($rest:literal) => {
        concat!(
            "SELECT r.report_id, r.received_ts, r.kind, r.room_id, r.event_id, r.target_user_id, \
                    r.reporter, r.reason, r.score, e.sender AS event_sender \
             FROM reports r LEFT JOIN events e ON e.event_id = r.event_id ",
            $rest
        )
    };
}

/// The filters of a listing (`?1` kind, `?2` reporter, `?3` room, `?4` target, `?5` sender).
macro_rules! report_filters {
    () => {
        "WHERE r.kind = ?1 \
           AND (?2 IS NULL OR instr(r.reporter, ?2) > 0) \
           AND (?3 IS NULL OR instr(r.room_id, ?3) > 0) \
           AND (?4 IS NULL OR instr(r.target_user_id, ?4) > 0) \
           AND (?5 IS NULL OR e.sender = ?5) "
    };
}

/// The server name of a `user_id` column (what follows the first `:`).
macro_rules! server_of {
    ($column:literal) => {
        concat!("substr(", $column, ", instr(", $column, ", ':') + 1)")
    };
}

#[async_trait]
impl ReportStore for SqliteTenantStore {
    async fn insert_report(&self, report: &NewReport) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO reports (received_ts, kind, room_id, event_id, target_user_id, \
                                  reporter, reason, score) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING report_id",
        )
        .bind(report.received_ts)
        .bind(report.kind.as_str())
        .bind(&report.room_id)
        .bind(&report.event_id)
        .bind(&report.target_user_id)
        .bind(&report.reporter)
        .bind(&report.reason)
        .bind(report.score)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn report(&self, kind: ReportKind, report_id: i64) -> Result<Option<ReportRecord>> {
        let row = sqlx::query(select_reports!("WHERE r.kind = ? AND r.report_id = ?"))
            .bind(kind.as_str())
            .bind(report_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(report_from_row).transpose()
    }

    async fn reports(&self, query: &ReportQuery) -> Result<(Vec<ReportRecord>, u64)> {
        let count_sql = concat!(
            "SELECT COUNT(*) FROM reports r LEFT JOIN events e ON e.event_id = r.event_id ",
            report_filters!()
        );
        let page_sql = if query.newest_first {
            concat!(
                select_reports!(""),
                report_filters!(),
                "ORDER BY r.report_id DESC LIMIT ?6 OFFSET ?7"
            )
        } else {
            concat!(
                select_reports!(""),
                report_filters!(),
                "ORDER BY r.report_id LIMIT ?6 OFFSET ?7"
            )
        };
        // One read transaction, so that the page and the total agree.
        let mut tx = self.pool.begin().await?;
        let total: i64 = sqlx::query_scalar(count_sql)
            .bind(query.kind.as_str())
            .bind(&query.reporter_contains)
            .bind(&query.room_contains)
            .bind(&query.target_contains)
            .bind(&query.event_sender)
            .fetch_one(&mut *tx)
            .await?;
        let rows = sqlx::query(page_sql)
            .bind(query.kind.as_str())
            .bind(&query.reporter_contains)
            .bind(&query.room_contains)
            .bind(&query.target_contains)
            .bind(&query.event_sender)
            .bind(to_i64(query.limit))
            .bind(to_i64(query.offset))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let reports = rows.iter().map(report_from_row).collect::<Result<_>>()?;
        Ok((reports, to_u64(total, "report count")?))
    }

    async fn delete_report(&self, kind: ReportKind, report_id: i64) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM reports WHERE kind = ? AND report_id = ?")
            .bind(kind.as_str())
            .bind(report_id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn server_notice_room(&self, localpart: &str) -> Result<Option<String>> {
        let room =
            sqlx::query_scalar("SELECT room_id FROM server_notice_rooms WHERE localpart = ?")
                .bind(localpart)
                .fetch_optional(&self.pool)
                .await?;
        Ok(room)
    }

    async fn set_server_notice_room(&self, localpart: &str, room_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO server_notice_rooms (localpart, room_id) VALUES (?, ?) \
             ON CONFLICT (localpart) DO UPDATE SET room_id = excluded.room_id",
        )
        .bind(localpart)
        .bind(room_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn known_destinations(&self) -> Result<Vec<String>> {
        let destinations = sqlx::query_scalar(concat!(
            "SELECT DISTINCT ",
            server_of!("user_id"),
            " AS destination FROM room_memberships \
             UNION SELECT destination FROM federation_outbox \
             UNION SELECT destination FROM federation_outbox_edus \
             ORDER BY destination"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(destinations)
    }

    async fn destination_rooms(&self, destination: &str) -> Result<Vec<DestinationRoom>> {
        let rows = sqlx::query(concat!(
            "SELECT m.room_id, \
                    (SELECT COALESCE(MAX(e.stream), 0) FROM events e WHERE e.room_id = m.room_id) \
                        AS stream \
             FROM room_memberships m \
             WHERE m.membership = 'join' AND ",
            server_of!("m.user_id"),
            " = ? GROUP BY m.room_id ORDER BY m.room_id"
        ))
        .bind(destination)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DestinationRoom {
                    room_id: row.try_get("room_id")?,
                    stream: row.try_get("stream")?,
                })
            })
            .collect()
    }

    async fn media_usage_by_uploader(
        &self,
        from_ts: i64,
        until_ts: Option<i64>,
    ) -> Result<Vec<UploaderUsage>> {
        let rows = sqlx::query(
            "SELECT uploader, COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM media \
             WHERE sha256 IS NOT NULL AND created_ts >= ?1 AND (?2 IS NULL OR created_ts <= ?2) \
             GROUP BY uploader ORDER BY uploader",
        )
        .bind(from_ts)
        .bind(until_ts)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UploaderUsage {
                    uploader: row.try_get("uploader")?,
                    count: to_u64(row.try_get("count")?, "media count")?,
                    bytes: to_u64(row.try_get("bytes")?, "media bytes")?,
                })
            })
            .collect()
    }

    async fn largest_rooms(&self, limit: u32) -> Result<Vec<RoomSize>> {
        let rows = sqlx::query(
            "SELECT room_id, SUM(length(CAST(pdu AS BLOB))) AS bytes FROM events \
             GROUP BY room_id ORDER BY bytes DESC, room_id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RoomSize {
                    room_id: row.try_get("room_id")?,
                    bytes: to_u64(row.try_get("bytes")?, "room bytes")?,
                })
            })
            .collect()
    }
}

fn report_from_row(row: &SqliteRow) -> Result<ReportRecord> {
    let kind: String = row.try_get("kind")?;
    let kind = ReportKind::from_stored(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("report kind {kind:?}")))?;
    Ok(ReportRecord {
        report_id: row.try_get("report_id")?,
        report: NewReport {
            received_ts: row.try_get("received_ts")?,
            kind,
            room_id: row.try_get("room_id")?,
            event_id: row.try_get("event_id")?,
            target_user_id: row.try_get("target_user_id")?,
            reporter: row.try_get("reporter")?,
            reason: row.try_get("reason")?,
            score: row.try_get("score")?,
        },
        event_sender: row.try_get("event_sender")?,
    })
}
