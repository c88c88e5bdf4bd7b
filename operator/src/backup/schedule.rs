//! When backups are due (pure): a five-field cron schedule in an IANA time zone, evaluated in
//! wall-clock time of that zone. A wall time skipped by a daylight-saving jump runs at the first
//! instant after the jump; a wall time that happens twice runs once, at the first.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("backup.schedule {expr:?} is not a valid cron schedule: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// Why.
        reason: String,
    },
    /// The time zone is unknown.
    #[error("backup.timeZone {0:?} is not an IANA time zone (e.g. UTC, Europe/Paris)")]
    TimeZone(String),
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// Occurrences looked at, at most, when searching backwards (a minute schedule over ~70 days).
const MAX_STEPS: usize = 100_000;

impl Schedule {
    /// Parse `expr` (five fields or `@hourly`-style macros) in time zone `tz` (default UTC).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Self, ScheduleError> {
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && fields != 5 {
            return Err(ScheduleError::Cron {
                expr: expr.into(),
                reason: format!("expected 5 fields (minute hour day month weekday), got {fields}"),
            });
        }
        let cron = Cron::new(expr).parse().map_err(|e| ScheduleError::Cron {
            expr: expr.into(),
            reason: e.to_string(),
        })?;
        let tz = match tz {
            None | Some("") => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::TimeZone(name.into()))?,
        };
        Ok(Schedule { cron, tz })
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest occurrence in `(after, now]`, if any: the one backup that is due now, however
    /// many were missed (missed runs are not made up one by one).
    pub fn due(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut last = None;
        let mut t = after;
        for _ in 0..MAX_STEPS {
            match self.next_after(t) {
                Some(n) if n <= now => {
                    last = Some(n);
                    t = n;
                }
                _ => return last,
            }
        }
        last
    }

    /// Whether backups are overdue: an occurrence passed more than `grace` ago and no backup
    /// succeeded since it. `since` is when the schedule started to apply (the cluster's
    /// creation or the schedule's last change) and `last_success` the last good backup.
    pub fn overdue(
        &self,
        since: DateTime<Utc>,
        last_success: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        let from = last_success.map_or(since, |s| s.max(since));
        self.due(from, now - grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_minute_and_macros() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T10:00:30Z")),
            Some(utc("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T10:01:00Z")),
            Some(utc("2026-01-01T10:02:00Z")),
            "strictly after"
        );
        let d = Schedule::parse("@daily", None).unwrap();
        assert_eq!(
            d.next_after(utc("2026-01-01T10:00:00Z")),
            Some(utc("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_say_why() {
        let e = Schedule::parse("* * * *", None).unwrap_err();
        assert!(e.to_string().contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("61 * * * *", None).unwrap_err();
        assert!(e.to_string().contains("not a valid cron schedule"), "{e}");
        let e = Schedule::parse("0 * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "backup.timeZone \"Mars/Olympus\" is not an IANA time zone (e.g. UTC, Europe/Paris)"
        );
    }

    #[test]
    fn wall_clock_time_in_the_zone() {
        // 02:00 in Tokyo (UTC+9, no DST) is 17:00 UTC the day before.
        let s = Schedule::parse("0 2 * * *", Some("Asia/Tokyo")).unwrap();
        assert_eq!(
            s.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-01T17:00:00Z"))
        );
        // 09:00 in New York: 13:00 UTC in summer, 14:00 UTC in winter.
        let s = Schedule::parse("0 9 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            s.next_after(utc("2026-07-01T00:00:00Z")),
            Some(utc("2026-07-01T13:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-12-01T00:00:00Z")),
            Some(utc("2026-12-01T14:00:00Z"))
        );
    }

    #[test]
    fn a_wall_time_skipped_by_dst_runs_right_after_the_jump() {
        // Europe/Paris springs forward on 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        let next = s.next_after(utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            next,
            utc("2026-03-29T01:00:00Z"),
            "03:00 CEST, the first valid instant"
        );
        // The day after, 02:30 CEST exists again.
        assert_eq!(s.next_after(next), Some(utc("2026-03-30T00:30:00Z")));
    }

    #[test]
    fn a_wall_time_that_happens_twice_runs_once() {
        // Europe/Paris falls back on 2026-10-25: 02:00-03:00 happens twice (CEST then CET).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        let first = s.next_after(utc("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(
            first,
            utc("2026-10-25T00:30:00Z"),
            "02:30 CEST, the first of the two"
        );
        let second = s.next_after(first).unwrap();
        assert_eq!(
            second,
            utc("2026-10-26T01:30:00Z"),
            "next day 02:30 CET, not 02:30 CET the same day"
        );
    }

    #[test]
    fn only_the_latest_missed_run_is_due() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        // Operator down from 10:10 to 13:20: one backup is due, for 13:00.
        assert_eq!(
            s.due(utc("2026-01-01T10:10:00Z"), utc("2026-01-01T13:20:00Z")),
            Some(utc("2026-01-01T13:00:00Z"))
        );
        assert_eq!(
            s.due(utc("2026-01-01T13:00:00Z"), utc("2026-01-01T13:20:00Z")),
            None
        );
    }

    #[test]
    fn overdue_follows_the_schedule_not_a_fixed_interval() {
        let grace = chrono::Duration::minutes(10);
        let hourly = Schedule::parse("0 * * * *", None).unwrap();
        let since = utc("2026-01-01T00:00:00Z");
        // Last success 10:00; at 11:05 the 11:00 run is within its grace: not overdue.
        let ok = Some(utc("2026-01-01T10:00:05Z"));
        assert_eq!(
            hourly.overdue(since, ok, utc("2026-01-01T11:05:00Z"), grace),
            None
        );
        // At 11:15 it is overdue since 11:00.
        assert_eq!(
            hourly.overdue(since, ok, utc("2026-01-01T11:15:00Z"), grace),
            Some(utc("2026-01-01T11:00:00Z"))
        );
        // A daily schedule with the same last success is not overdue at 11:15.
        let daily = Schedule::parse("0 0 * * *", None).unwrap();
        assert_eq!(
            daily.overdue(since, ok, utc("2026-01-01T11:15:00Z"), grace),
            None
        );
    }
}
