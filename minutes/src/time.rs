//! Dates and durations, in UTC, without a calendar crate: enough to title
//! minutes ("12 November 2026", "14:05 UTC", "1 h 05 min") and to write and
//! read cue times (`00:01:05.200`) and ISO timestamps.

use crate::language::Language;

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

// Howard Hinnant's days-from-civil algorithms.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    pub fn from_epoch_ms(ms: u64) -> DateTime {
        let ms = ms as i64;
        let days = ms.div_euclid(86_400_000);
        let rest = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rest / 3_600_000) as u32,
            minute: (rest / 60_000 % 60) as u32,
            second: (rest / 1000 % 60) as u32,
            millis: (rest % 1000) as u32,
        }
    }

    pub fn to_epoch_ms(self) -> u64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let ms = days * 86_400_000
            + self.hour as i64 * 3_600_000
            + self.minute as i64 * 60_000
            + self.second as i64 * 1000
            + self.millis as i64;
        ms.max(0) as u64
    }
}

/// `2026-11-12T14:05:00.000Z`
pub fn iso(ms: u64) -> String {
    let t = DateTime::from_epoch_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// Reads what [`iso`] writes (the fraction and the `Z` are optional).
pub fn parse_iso(text: &str) -> Option<u64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, clock) = text.split_once('T')?;
    let mut date = date.split('-');
    let year = date.next()?.parse().ok()?;
    let month = date.next()?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day = date.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut hms = hms.split(':');
    let hour = hms.next()?.parse().ok()?;
    let minute = hms.next()?.parse().ok()?;
    let second = hms.next().unwrap_or("0").parse().ok()?;
    let millis = format!("{fraction:0<3}")[..3].parse().ok()?;
    Some(
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millis,
        }
        .to_epoch_ms(),
    )
}

/// `00:01:05.200`, a cue time from the start of the call.
pub fn cue(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Reads `hh:mm:ss.mmm` or `mm:ss.mmm`.
pub fn parse_cue(text: &str) -> Option<u64> {
    let text = text.trim();
    let (clock, fraction) = text.split_once('.').unwrap_or((text, "0"));
    if fraction.is_empty() || fraction.len() > 3 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{fraction:0<3}").parse().ok()?;
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    let seconds = match parts.as_slice() {
        [h, m, s] if *m < 60 && *s < 60 => h * 3600 + m * 60 + s,
        [m, s] if *s < 60 => m * 60 + s,
        _ => return None,
    };
    Some(seconds * 1000 + millis)
}

const ENGLISH_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const FRENCH_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `12 November 2026` / `12 novembre 2026`.
pub fn date(ms: u64, lang: Language) -> String {
    let t = DateTime::from_epoch_ms(ms);
    let months = match lang {
        Language::English => ENGLISH_MONTHS,
        Language::French => FRENCH_MONTHS,
    };
    format!("{} {} {}", t.day, months[(t.month - 1) as usize], t.year)
}

/// `14:05 UTC`.
pub fn clock(ms: u64) -> String {
    let t = DateTime::from_epoch_ms(ms);
    format!("{:02}:{:02} UTC", t.hour, t.minute)
}

/// `1 h 05 min`, `45 min`, `30 s`.
pub fn duration(ms: u64) -> String {
    let minutes = (ms + 30_000) / 60_000;
    if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else if minutes < 60 {
        format!("{minutes} min")
    } else {
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds_round_trip_through_iso() {
        for ms in [0, 1_794_492_300_250, 951_782_400_000 /* 2000-02-29 */] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms), "{}", iso(ms));
        }
        assert_eq!(iso(1_794_492_300_250), "2026-11-12T14:05:00.250Z");
    }

    #[test]
    fn cue_times_round_trip() {
        assert_eq!(cue(3_723_456), "01:02:03.456");
        assert_eq!(parse_cue("01:02:03.456"), Some(3_723_456));
        assert_eq!(parse_cue("02:03.4"), Some(123_400));
        assert_eq!(parse_cue("aa:03.4"), None);
    }

    #[test]
    fn dates_and_durations_read_naturally() {
        assert_eq!(
            date(1_794_492_300_250, Language::French),
            "12 novembre 2026"
        );
        assert_eq!(clock(1_794_492_300_250), "14:05 UTC");
        assert_eq!(duration(65 * 60_000), "1 h 05 min");
        assert_eq!(duration(14 * 60_000 + 40_000), "15 min");
    }
}
