//! Maintenance windows, judged by the server's clock, never the caller's.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use serde::Deserialize;

/// `{days: ["Mon", …], start: "HH:MM", end: "HH:MM"}`, in UTC. A window
/// whose end is not after its start runs past midnight: it opens on one of
/// its days and closes on the next (so equal start and end mean 24 hours).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MaintenanceWindow {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

/// Why a window cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("day {0:?} is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")]
    Day(String),
    #[error("time {0:?} is not HH:MM")]
    Time(String),
}

fn weekday(day: &str) -> Result<Weekday, WindowError> {
    Ok(match day {
        "Mon" => Weekday::Mon,
        "Tue" => Weekday::Tue,
        "Wed" => Weekday::Wed,
        "Thu" => Weekday::Thu,
        "Fri" => Weekday::Fri,
        "Sat" => Weekday::Sat,
        "Sun" => Weekday::Sun,
        other => return Err(WindowError::Day(other.to_owned())),
    })
}

fn minutes(t: &str) -> Result<u32, WindowError> {
    let time = NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| WindowError::Time(t.to_owned()))?;
    Ok(time.hour() * 60 + time.minute())
}

impl MaintenanceWindow {
    /// Check that every day and time can be read.
    pub fn validate(&self) -> Result<(), WindowError> {
        for d in &self.days {
            weekday(d)?;
        }
        minutes(&self.start)?;
        minutes(&self.end)?;
        Ok(())
    }

    /// Whether `now` is inside the window.
    pub fn contains(&self, now: DateTime<Utc>) -> Result<bool, WindowError> {
        let (start, end) = (minutes(&self.start)?, minutes(&self.end)?);
        let at = now.hour() * 60 + now.minute();
        let today = now.weekday();
        let yesterday = today.pred();
        let mut open = false;
        for d in &self.days {
            let day = weekday(d)?;
            open |= if start < end {
                day == today && (start..end).contains(&at)
            } else {
                (day == today && at >= start) || (day == yesterday && at < end)
            };
        }
        Ok(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn windows_open_and_close_on_the_servers_clock() {
        let office =
            MaintenanceWindow { days: vec!["Mon".into(), "Thu".into()], start: "09:00".into(), end: "16:00".into() };
        let night = MaintenanceWindow { days: vec!["Sat".into()], start: "22:00".into(), end: "02:00".into() };
        // 2026-11-23 is a Monday.
        let cases = [
            (&office, at(2026, 11, 23, 9, 0), true),
            (&office, at(2026, 11, 23, 15, 59), true),
            (&office, at(2026, 11, 23, 16, 0), false),
            (&office, at(2026, 11, 23, 8, 59), false),
            (&office, at(2026, 11, 24, 10, 0), false),
            (&office, at(2026, 11, 26, 10, 0), true),
            (&night, at(2026, 11, 28, 23, 0), true),
            (&night, at(2026, 11, 29, 1, 59), true),
            (&night, at(2026, 11, 29, 2, 0), false),
            (&night, at(2026, 11, 28, 1, 0), false),
        ];
        for (window, now, open) in cases {
            assert_eq!(window.contains(now).unwrap(), open, "{window:?} at {now}");
        }
        let bad = MaintenanceWindow { days: vec!["Someday".into()], start: "9".into(), end: "10:00".into() };
        assert!(bad.validate().is_err());
    }
}
