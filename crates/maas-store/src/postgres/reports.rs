//! `ReportStore` on a tenant's PostgreSQL schema (tables in the `administration` migration),
//! and the admin API's reads of other tables: federation destinations and rooms by size.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresTenantStore;
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

/// The filters of a listing (`$1` kind, `$2` reporter, `$3` room, `$4` target, `$5` sender).
macro_rules! report_filters {
    () => {
        "WHERE r.kind = $1 \
           AND ($2::text IS NULL OR strpos(r.reporter, $2) > 0) \
           AND ($3::text IS NULL OR strpos(r.room_id, $3) > 0) \
           AND ($4::text IS NULL OR strpos(r.target_user_id, $4) > 0) \
           AND ($5::text IS NULL OR e.sender = $5) "
    };
}

/// The server name of a `user_id` column (what follows the first `:`).
macro_rules! server_of {
    ($column:literal) => {
        concat!("substr(", $column, ", strpos(", $column, ", ':') + 1)")
    };
}

#[async_trait]
impl ReportStore for PostgresTenantStore {
    async fn insert_report(&self, report: &NewReport) -> Result<i64> {
        let mut conn = self.schema.conn().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO reports (received_ts, kind, room_id, event_id, target_user_id, \
                                  reporter, reason, score) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING report_id",
        )
        .bind(report.received_ts)
        .bind(report.kind.as_str())
        .bind(&report.room_id)
        .bind(&report.event_id)
        .bind(&report.target_user_id)
        .bind(&report.reporter)
        .bind(&report.reason)
        .bind(report.score)
        .fetch_one(&mut *conn)
        .await?;
        Ok(id)
    }

    async fn report(&self, kind: ReportKind, report_id: i64) -> Result<Option<ReportRecord>> {
        let mut conn = self.schema.conn().await?;
        let row = sqlx::query(select_reports!("WHERE r.kind = $1 AND r.report_id = $2"))
            .bind(kind.as_str())
            .bind(report_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(report_from_row).transpose()
    }

    async fn reports(&self, query: &ReportQuery) -> Result<(Vec<ReportRecord>, u64)> {
        let count_sql = concat!(
            "SELECT count(*) FROM reports r LEFT JOIN events e ON e.event_id = r.event_id ",
            report_filters!()
        );
        let page_sql = if query.newest_first {
            concat!(
                select_reports!(""),
                report_filters!(),
                "ORDER BY r.report_id DESC LIMIT $6 OFFSET $7"
            )
        } else {
            concat!(
                select_reports!(""),
                report_filters!(),
                "ORDER BY r.report_id LIMIT $6 OFFSET $7"
            )
        };
        // The total and the page may see different reports filed in between; harmless for a
        // listing, which Synapse reads in two statements too.
        let mut conn = self.schema.conn().await?;
        let total: i64 = sqlx::query_scalar(count_sql)
            .bind(query.kind.as_str())
            .bind(&query.reporter_contains)
            .bind(&query.room_contains)
            .bind(&query.target_contains)
            .bind(&query.event_sender)
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query(page_sql)
            .bind(query.kind.as_str())
            .bind(&query.reporter_contains)
            .bind(&query.room_contains)
            .bind(&query.target_contains)
            .bind(&query.event_sender)
            .bind(to_i64(query.limit))
            .bind(to_i64(query.offset))
            .fetch_all(&mut *conn)
            .await?;
        let reports = rows.iter().map(report_from_row).collect::<Result<_>>()?;
        Ok((reports, to_u64(total, "report count")?))
    }

    async fn delete_report(&self, kind: ReportKind, report_id: i64) -> Result<bool> {
        let mut conn = self.schema.conn().await?;
        let deleted = sqlx::query("DELETE FROM reports WHERE kind = $1 AND report_id = $2")
            .bind(kind.as_str())
            .bind(report_id)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn server_notice_room(&self, localpart: &str) -> Result<Option<String>> {
        let mut conn = self.schema.conn().await?;
        let room =
            sqlx::query_scalar("SELECT room_id FROM server_notice_rooms WHERE localpart = $1")
                .bind(localpart)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(room)
    }

    async fn set_server_notice_room(&self, localpart: &str, room_id: &str) -> Result<()> {
        let mut conn = self.schema.conn().await?;
        sqlx::query(
            "INSERT INTO server_notice_rooms (localpart, room_id) VALUES ($1, $2) \
             ON CONFLICT (localpart) DO UPDATE SET room_id = excluded.room_id",
        )
        .bind(localpart)
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn known_destinations(&self) -> Result<Vec<String>> {
        let mut conn = self.schema.conn().await?;
        let destinations = sqlx::query_scalar(concat!(
            "SELECT ",
            server_of!("user_id"),
            " COLLATE \"C\" AS destination FROM room_memberships \
             UNION SELECT destination COLLATE \"C\" FROM federation_outbox \
             UNION SELECT destination COLLATE \"C\" FROM federation_outbox_edus \
             ORDER BY destination"
        ))
        .fetch_all(&mut *conn)
        .await?;
        Ok(destinations)
    }

    async fn destination_rooms(&self, destination: &str) -> Result<Vec<DestinationRoom>> {
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT m.room_id, \
                    (SELECT COALESCE(max(e.stream), 0) FROM events e WHERE e.room_id = m.room_id) \
                        AS stream \
             FROM room_memberships m \
             WHERE m.membership = 'join' AND ",
            server_of!("m.user_id"),
            " = $1 GROUP BY m.room_id ORDER BY m.room_id"
        ))
        .bind(destination)
        .fetch_all(&mut *conn)
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
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT uploader, count(*) AS count, COALESCE(sum(size), 0)::BIGINT AS bytes \
             FROM media \
             WHERE sha256 IS NOT NULL AND created_ts >= $1 \
               AND ($2::BIGINT IS NULL OR created_ts <= $2) \
             GROUP BY uploader ORDER BY uploader",
        )
        .bind(from_ts)
        .bind(until_ts)
        .fetch_all(&mut *conn)
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
        let mut conn = self.schema.conn().await?;
        let rows = sqlx::query(
            "SELECT room_id, sum(octet_length(pdu))::BIGINT AS bytes FROM events \
             GROUP BY room_id ORDER BY bytes DESC, room_id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
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

fn report_from_row(row: &PgRow) -> Result<ReportRecord> {
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
