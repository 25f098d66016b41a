//! Standard 5-field cron schedules, as CronJob reads them: minute hour day-of-month month
//! day-of-week, each `*`, a number, a range `a-b`, a list `a,b`, and a step `/n`; macros
//! @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually). Times are UTC.
//! As in cron, when both day fields are restricted a day matching either one fires.

use k8s_openapi::jiff::{civil, Timestamp, ToSpan};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
    text: String,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<(u64, bool), String> {
    let bad = |why: &str| format!("{name} field {text:?}: {why}");
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| bad("bad step"))?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad("not a number"))?, b.parse().map_err(|_| bad("not a number"))?)
        } else {
            let a: u32 = range.parse().map_err(|_| bad("not a number"))?;
            // "5/15" means from 5 to the end, every 15.
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(bad(&format!("out of range {lo}-{hi}")));
        }
        let mut v = a;
        while v <= b {
            // Sunday may be written 7.
            bits |= 1 << (if name == "day-of-week" { v % 7 } else { v });
            v += step;
        }
    }
    Ok((bits, text != "*" && !text.starts_with("*/")))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{text:?}: a schedule has 5 fields (minute hour day-of-month month day-of-week), not {}",
                f.len()
            ));
        }
        let (minutes, _) = field(f[0], "minute", 0, 59)?;
        let (hours, _) = field(f[1], "hour", 0, 23)?;
        let (days, days_restricted) = field(f[2], "day-of-month", 1, 31)?;
        let (months, _) = field(f[3], "month", 1, 12)?;
        let (weekdays, weekdays_restricted) = field(f[4], "day-of-week", 0, 7)?;
        Ok(Schedule { minutes, hours, days, months, weekdays, days_restricted, weekdays_restricted, text: text.into() })
    }

    fn day_matches(&self, d: civil::Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first time strictly after `after` that the schedule fires (None if it never does,
    /// as for "0 0 30 2 *").
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let utc = after.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
        // The next whole minute.
        let mut t = utc.datetime().with().second(0).subsec_nanosecond(0).build().ok()?.checked_add(1.minute()).ok()?;
        // Four years and a day covers every leap-day schedule.
        let limit = t.checked_add(1462.days()).ok()?;
        while t < limit {
            let d = t.date();
            if self.months & (1 << d.month()) == 0 || !self.day_matches(d) {
                t = d.tomorrow().ok()?.to_datetime(civil::Time::midnight());
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_times() {
        let cases = [
            ("0 */6 * * *", "2026-11-21T10:00:00Z", "2026-11-21T12:00:00Z"),
            ("0 */6 * * *", "2026-11-21T23:59:59Z", "2026-11-22T00:00:00Z"),
            ("*/5 * * * *", "2026-11-21T10:02:30Z", "2026-11-21T10:05:00Z"),
            ("0 3 * * *", "2026-11-21T03:00:00Z", "2026-11-22T03:00:00Z"),
            ("30 2 1 * *", "2026-11-21T00:00:00Z", "2026-12-01T02:30:00Z"),
            ("0 0 * * 1", "2026-11-21T00:00:00Z", "2026-11-23T00:00:00Z"), // the 21st is a Saturday
            ("0 0 * * 7", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"),
            ("0 0 29 2 *", "2026-11-21T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 0 13 * 5", "2026-11-21T00:00:00Z", "2026-11-27T00:00:00Z"), // day 13 or a Friday
            ("15,45 9-10 * * *", "2026-11-21T09:20:00Z", "2026-11-21T09:45:00Z"),
            ("5/20 * * * *", "2026-11-21T09:26:00Z", "2026-11-21T09:45:00Z"),
            ("@hourly", "2026-11-21T09:26:00Z", "2026-11-21T10:00:00Z"),
            ("@daily", "2026-11-21T09:26:00Z", "2026-11-22T00:00:00Z"),
        ];
        for (text, after, want) in cases {
            let s = Schedule::parse(text).unwrap();
            assert_eq!(s.next_after(at(after)), Some(at(want)), "{text} after {after}");
        }
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next_after(at("2026-11-21T00:00:00Z")), None);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, says) in [
            ("0 */6 * *", "5 fields"),
            ("61 * * * *", "minute field"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day-of-month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 8", "day-of-week field"),
            ("*/0 * * * *", "bad step"),
            ("a * * * *", "not a number"),
        ] {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
