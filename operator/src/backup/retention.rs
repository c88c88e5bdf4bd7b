//! Which backups to delete (pure): keep the newest `keepLast` and those younger than `maxAge`;
//! the newest good backup is never deleted, whatever the policy says, nor one the resource
//! names as a restore or bootstrap source (pinned). Objects of a backup that
//! never completed (no metadata) are removed once they are clearly abandoned.

use chrono::{DateTime, Duration, Utc};

/// A backup found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Name.
    pub name: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// It completed: its metadata object exists and names its checksum.
    pub complete: bool,
}

/// An incomplete backup older than this is abandoned (an upload takes far less).
pub const ABANDONED_AFTER: Duration = Duration::hours(6);

/// Parse `maxAge` (`90m`, `36h`, `7d`).
pub fn parse_age(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    match unit {
        "m" => Some(Duration::minutes(n)),
        "h" => Some(Duration::hours(n)),
        "d" => Some(Duration::days(n)),
        _ => None,
    }
}

/// The names to delete; `pinned` names are kept whatever the policy says.
pub fn to_delete(
    stored: &[Stored],
    keep_last: Option<u32>,
    max_age: Option<Duration>,
    pinned: &[String],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut good: Vec<&Stored> = stored.iter().filter(|s| s.complete).collect();
    good.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    let mut out: Vec<String> = good
        .iter()
        .enumerate()
        .skip(1) // the newest good backup stays
        .filter(|(i, s)| {
            keep_last.is_some_and(|k| *i >= k as usize)
                || max_age.is_some_and(|age| now - s.time > age)
        })
        .map(|(_, s)| s.name.clone())
        .collect();
    out.extend(
        stored
            .iter()
            .filter(|s| !s.complete && now - s.time > ABANDONED_AFTER)
            .map(|s| s.name.clone()),
    );
    out.retain(|n| !pinned.contains(n));
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        "2026-01-10T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }

    fn backups(hours: &[i64]) -> Vec<Stored> {
        hours
            .iter()
            .map(|h| Stored {
                name: format!("b{h:02}"),
                time: at(*h),
                complete: true,
            })
            .collect()
    }

    #[test]
    fn keep_last_n() {
        let s = backups(&[1, 2, 3, 4, 5]);
        assert_eq!(to_delete(&s, Some(3), None, &[], at(6)), ["b01", "b02"]);
        assert!(to_delete(&s, Some(5), None, &[], at(6)).is_empty());
        assert!(
            to_delete(&s, None, None, &[], at(6)).is_empty(),
            "no policy keeps all"
        );
    }

    #[test]
    fn max_age_and_keep_last_together() {
        let s = backups(&[1, 2, 3, 4, 5]);
        // Older than 2h at hour 6: b01..b03; keep 4 would only drop b01.
        assert_eq!(
            to_delete(&s, Some(4), Some(Duration::hours(2)), &[], at(6)),
            ["b01", "b02", "b03"]
        );
    }

    #[test]
    fn the_newest_good_backup_is_never_deleted() {
        // Every backup is older than max age: the newest good one stays anyway.
        let mut s = backups(&[1, 2, 3]);
        s.push(Stored {
            name: "b04-partial".into(),
            time: at(4),
            complete: false,
        });
        let del = to_delete(&s, Some(1), Some(Duration::minutes(1)), &[], at(100));
        assert_eq!(del, ["b01", "b02", "b04-partial"]);
        assert!(!del.contains(&"b03".to_string()));
    }

    #[test]
    fn a_recent_incomplete_backup_is_left_alone() {
        let mut s = backups(&[1]);
        s.push(Stored {
            name: "b02-uploading".into(),
            time: at(2),
            complete: false,
        });
        assert!(to_delete(&s, Some(1), None, &[], at(3)).is_empty());
    }

    #[test]
    fn a_pinned_backup_outlives_the_policy() {
        // A restore reads b02 while newer backups (its safety backup among them) arrive.
        let s = backups(&[1, 2, 3, 4]);
        let pinned = ["b02".to_string()];
        assert_eq!(to_delete(&s, Some(1), None, &pinned, at(5)), ["b01", "b03"]);
        assert_eq!(
            to_delete(&s, None, Some(Duration::minutes(1)), &pinned, at(5)),
            ["b01", "b03"]
        );
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("90m"), Some(Duration::minutes(90)));
        assert_eq!(parse_age("36h"), Some(Duration::hours(36)));
        assert_eq!(parse_age("7d"), Some(Duration::days(7)));
        assert_eq!(parse_age("7w"), None);
        assert_eq!(parse_age(""), None);
    }
}
