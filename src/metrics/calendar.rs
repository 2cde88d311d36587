//! Shift calendar in the plant's IANA zone: shift instances with breaks, hour and day windows, DST.
//!
//! Local times are resolved with jiff's *compatible* disambiguation: a local time inside a DST gap
//! (spring forward) moves forward by the gap length, an ambiguous one (fall back) takes the earlier
//! instant. So a 22:00–06:00 night shift over the spring change lasts 7 h, over the autumn change 9 h.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::EngineError;
use crate::config::{Config, ShiftConfig};

const MS_HOUR: i64 = 3_600_000;
/// How far ahead to look for the next shift (holidays may be long).
const SEARCH_DAYS: i32 = 400;

/// One occurrence of a shift, in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftInstance {
    /// Shift name.
    pub name: String,
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Breaks, clipped to the shift, sorted, not overlapping.
    pub breaks: Vec<(i64, i64)>,
}

impl ShiftInstance {
    /// (scheduled, in-shift) milliseconds of `[a, b)`: in-shift time and in-shift time outside breaks.
    pub fn overlap(&self, a: i64, b: i64) -> (i64, i64) {
        scheduled_overlap(self.start, self.end, &self.breaks, a, b)
    }
}

/// (scheduled, in-shift) milliseconds of `[a, b)` within a shift `[start, end)` with `breaks`.
pub fn scheduled_overlap(
    start: i64,
    end: i64,
    breaks: &[(i64, i64)],
    a: i64,
    b: i64,
) -> (i64, i64) {
    let s = a.max(start);
    let e = b.min(end);
    if e <= s {
        return (0, 0);
    }
    let brk: i64 = breaks
        .iter()
        .map(|&(bs, be)| (e.min(be) - s.max(bs)).max(0))
        .sum();
    (e - s - brk, e - s)
}

#[derive(Debug, Clone)]
struct ShiftDef {
    name: String,
    start: (i8, i8),
    end: (i8, i8),
    days: [bool; 7],
    breaks: Vec<((i8, i8), (i8, i8))>,
}

/// The plant's calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    shifts: Vec<ShiftDef>,
    non_production: Vec<Date>,
}

fn weekday_index(d: Date) -> usize {
    d.weekday().to_monday_zero_offset() as usize
}

impl Calendar {
    /// Build from the config (time zone, shifts, non-production dates).
    pub fn new(config: &Config) -> Result<Calendar, EngineError> {
        let tz = TimeZone::get(&config.timezone).map_err(|e| EngineError::TimeZone {
            zone: config.timezone.clone(),
            reason: e.to_string(),
        })?;
        let shifts = config
            .shifts
            .iter()
            .map(Self::shift_def)
            .collect::<Result<Vec<_>, _>>()?;
        let mut non_production = config
            .non_production_dates
            .iter()
            .map(|d| {
                d.trim()
                    .parse::<Date>()
                    .map_err(|_| EngineError::Date { value: d.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        non_production.sort();
        Ok(Calendar {
            tz,
            shifts,
            non_production,
        })
    }

    fn shift_def(s: &ShiftConfig) -> Result<ShiftDef, EngineError> {
        let t = |v: &str| {
            crate::config::parse_hhmm(v)
                .map(|t| (t.hour(), t.minute()))
                .ok_or_else(|| EngineError::ShiftTime {
                    shift: s.name.clone(),
                    value: v.to_owned(),
                })
        };
        let mut days = [false; 7];
        for d in &s.days {
            days[d.to_jiff().to_monday_zero_offset() as usize] = true;
        }
        Ok(ShiftDef {
            name: s.name.clone(),
            start: t(&s.start)?,
            end: t(&s.end)?,
            days,
            breaks: s
                .breaks
                .iter()
                .map(|b| Ok((t(&b.start)?, t(&b.end)?)))
                .collect::<Result<Vec<_>, EngineError>>()?,
        })
    }

    /// True when no shift is configured: every hour is scheduled (24/7), no shift windows.
    pub fn all_day(&self) -> bool {
        self.shifts.is_empty()
    }

    fn resolve(&self, dt: DateTime) -> i64 {
        self.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map(|t| t.as_millisecond())
            .unwrap_or_else(|_| {
                // Out of jiff's range: fall back to the UTC reading of the civil time.
                TimeZone::UTC
                    .to_ambiguous_timestamp(dt)
                    .compatible()
                    .map(|t| t.as_millisecond())
                    .unwrap_or(0)
            })
    }

    fn at(&self, d: Date, (h, m): (i8, i8)) -> i64 {
        self.resolve(d.at(h, m, 0, 0))
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Local date of an instant.
    pub fn date_of(&self, ms: i64) -> Date {
        self.tz.to_datetime(Self::ts(ms)).date()
    }

    /// Shift instances starting on local date `d`, sorted by start.
    pub fn instances_on(&self, d: Date) -> Vec<ShiftInstance> {
        if self.non_production.binary_search(&d).is_ok() {
            return Vec::new();
        }
        let next = d.tomorrow().unwrap_or(d);
        let mut v: Vec<ShiftInstance> = self
            .shifts
            .iter()
            .filter(|s| s.days[weekday_index(d)])
            .map(|s| {
                let start = self.at(d, s.start);
                let end = self.at(if s.end <= s.start { next } else { d }, s.end);
                let mut breaks: Vec<(i64, i64)> = s
                    .breaks
                    .iter()
                    .filter_map(|&(bs, be)| {
                        let bd = if bs < s.start { next } else { d };
                        let bnext = bd.tomorrow().unwrap_or(bd);
                        let a = self.at(bd, bs).max(start);
                        let b = self.at(if be <= bs { bnext } else { bd }, be).min(end);
                        (b > a).then_some((a, b))
                    })
                    .collect();
                breaks.sort();
                let mut merged: Vec<(i64, i64)> = Vec::with_capacity(breaks.len());
                for (a, b) in breaks {
                    match merged.last_mut() {
                        Some(last) if a <= last.1 => last.1 = last.1.max(b),
                        _ => merged.push((a, b)),
                    }
                }
                ShiftInstance {
                    name: s.name.clone(),
                    start,
                    end,
                    breaks: merged,
                }
            })
            .filter(|i| i.end > i.start)
            .collect();
        v.sort_by_key(|i| i.start);
        v
    }

    fn find(&self, from: i64, pred: impl Fn(&ShiftInstance) -> bool) -> Option<ShiftInstance> {
        let mut d = self.date_of(from).yesterday().ok()?;
        for _ in 0..SEARCH_DAYS {
            if let Some(i) = self.instances_on(d).into_iter().find(&pred) {
                return Some(i);
            }
            d = d.tomorrow().ok()?;
        }
        None
    }

    /// The shift in progress at `t`, or else the next one.
    pub fn shift_at_or_after(&self, t: i64) -> Option<ShiftInstance> {
        if self.all_day() {
            return None;
        }
        self.find(t, |i| i.end > t)
    }

    /// The first shift starting at or after `t`.
    pub fn next_shift(&self, t: i64) -> Option<ShiftInstance> {
        if self.all_day() {
            return None;
        }
        self.find(t, |i| i.start >= t)
    }

    /// The local clock hour containing `t`: `[start, end)`.
    pub fn hour_window(&self, t: i64) -> (i64, i64) {
        let off = self.tz.to_offset(Self::ts(t)).seconds() as i64 * 1000;
        let start = t - (t + off).rem_euclid(MS_HOUR);
        (start, start + MS_HOUR)
    }

    /// The hour after the one ending at `end`.
    pub fn next_hour(&self, end: i64) -> (i64, i64) {
        let (_, e) = self.hour_window(end);
        (end, if e > end { e } else { end + MS_HOUR })
    }

    /// The local calendar day containing `t`: `[start, end)`.
    pub fn day_window(&self, t: i64) -> (i64, i64) {
        let d = self.date_of(t);
        let start = self.at(d, (0, 0));
        let end = self.at(d.tomorrow().unwrap_or(d), (0, 0));
        if start <= t && t < end {
            (start, end)
        } else {
            // The zone skipped midnight itself: the day starts at the first valid instant.
            (start.min(t), end.max(t + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(tz: &str, shifts: &str) -> Calendar {
        let json = format!(r#"{{"site":"s","timezone":"{tz}","shifts":{shifts},"machines":[]}}"#);
        let c: Config = serde_json::from_str(&json).unwrap();
        Calendar::new(&c).unwrap()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn night_shift_over_spring_change_lasts_seven_hours() {
        let c = cal(
            "Europe/Paris",
            r#"[{"name":"night","start":"22:00","end":"06:00"}]"#,
        );
        let i = c.shift_at_or_after(ms("2024-03-30T22:00:00Z")).unwrap();
        assert_eq!(i.start, ms("2024-03-30T21:00:00Z"));
        assert_eq!(i.end - i.start, 7 * MS_HOUR);
    }

    #[test]
    fn night_shift_over_autumn_change_lasts_nine_hours() {
        let c = cal(
            "Europe/Paris",
            r#"[{"name":"night","start":"22:00","end":"06:00"}]"#,
        );
        let i = c.shift_at_or_after(ms("2024-10-26T21:00:00Z")).unwrap();
        assert_eq!(i.start, ms("2024-10-26T20:00:00Z"));
        assert_eq!(i.end - i.start, 9 * MS_HOUR);
    }

    #[test]
    fn breaks_after_midnight_belong_to_the_next_day() {
        let c = cal(
            "UTC",
            r#"[{"name":"n","start":"22:00","end":"06:00","days":["mon"],"breaks":[{"start":"02:00","end":"02:30"}]}]"#,
        );
        let i = c.shift_at_or_after(ms("2024-03-04T00:00:00Z")).unwrap();
        assert_eq!(
            i.breaks,
            vec![(ms("2024-03-05T02:00:00Z"), ms("2024-03-05T02:30:00Z"))]
        );
        assert_eq!(
            i.overlap(i.start, i.end),
            (7 * MS_HOUR + MS_HOUR / 2, 8 * MS_HOUR)
        );
    }

    #[test]
    fn non_production_dates_open_no_shift() {
        let json = r#"{"site":"s","timezone":"UTC","shifts":[{"name":"d","start":"06:00","end":"14:00"}],
            "non_production_dates":["2024-03-05"],"machines":[]}"#;
        let c = Calendar::new(&serde_json::from_str::<Config>(json).unwrap()).unwrap();
        let i = c.next_shift(ms("2024-03-04T14:00:00Z")).unwrap();
        assert_eq!(i.start, ms("2024-03-06T06:00:00Z"));
    }

    #[test]
    fn hours_follow_local_clock_across_dst() {
        let c = cal("Europe/Paris", "[]");
        // 2024-10-27 01:30 UTC is 02:30 CET (second pass of the repeated hour).
        assert_eq!(
            c.hour_window(ms("2024-10-27T01:30:00Z")),
            (ms("2024-10-27T01:00:00Z"), ms("2024-10-27T02:00:00Z"))
        );
        let (s, e) = c.day_window(ms("2024-10-27T12:00:00Z"));
        assert_eq!(e - s, 25 * MS_HOUR);
    }
}
