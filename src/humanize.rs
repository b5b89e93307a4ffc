//! Durations written for people, the one formatter that alerts, emails, reports and the landing page share.

use std::time::Duration;

/// A duration for people: the two largest units, the second left out when it is zero, e.g. `97d 3h`, `120d`,
/// `3h 12m`, `4m 5s`, `42s`. Sub-second parts are dropped.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua} {b}{ub}")
        }
    };
    if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", minutes, "m")
    } else if minutes > 0 {
        pair(minutes, "m", seconds, "s")
    } else {
        format!("{seconds}s")
    }
}

/// A limit or setting as messages print it: [`duration`], except that a duration under a second is written in
/// milliseconds (`100ms`), so a bound such as "at least 100ms" does not read as `0s`. Config errors print every
/// duration this way, in the form the config takes back.
pub fn limit(d: Duration) -> String {
    if d < Duration::from_secs(1) && !d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        duration(d)
    }
}

/// A duration in words for sentences in emails and reports: `42 s`, `12 min`, `4 min 5 s`, `3 h 12 min`,
/// `1 day 3 h`, and whole days from two days on (`97 days`), because token ages and policies are counted in days.
/// Sub-second parts are dropped.
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let pair = |a: String, b: u64, ub: &str| {
        if b == 0 { a } else { format!("{a} {b} {ub}") }
    };
    if days >= 2 {
        format!("{days} days")
    } else if days == 1 {
        pair("1 day".to_string(), hours, "h")
    } else if hours > 0 {
        pair(format!("{hours} h"), minutes, "min")
    } else if minutes > 0 {
        pair(format!("{minutes} min"), seconds, "s")
    } else {
        format!("{seconds} s")
    }
}

/// An age in seconds, as [`duration`] writes it, with a leading `-` when it is negative (a timestamp in the future:
/// clock skew upstream). Not-a-number reads as `0s`.
pub fn age_seconds(seconds: f64) -> String {
    if seconds < 0.0 {
        format!("-{}", duration(Duration::from_secs_f64(-seconds)))
    } else if seconds.is_finite() {
        duration(Duration::from_secs_f64(seconds))
    } else if seconds.is_nan() {
        "0s".to_string()
    } else {
        duration(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_two_largest_units() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (42, "42s"),
            (60, "1m"),
            (65, "1m 5s"),
            (245, "4m 5s"),
            (3600, "1h"),
            (3_700, "1h 1m"),
            (11_520, "3h 12m"),
            (90_000, "1d 1h"),
            (86_400 * 120, "120d"),
            (86_400 * 97 + 3 * 3600 + 59, "97d 3h"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(Duration::from_secs(secs)), want, "{secs}s");
            assert_eq!(age_seconds(secs as f64), want, "age {secs}s");
        }
    }

    #[test]
    fn words_count_whole_days_from_two_days_on() {
        let cases = [
            (0, "0 s"),
            (42, "42 s"),
            (720, "12 min"),
            (245, "4 min 5 s"),
            (11_520, "3 h 12 min"),
            (3600, "1 h"),
            (86_400, "1 day"),
            (90_000, "1 day 1 h"),
            (86_400 * 90, "90 days"),
            (86_400 * 97 + 3 * 3600 + 59, "97 days"),
        ];
        for (secs, want) in cases {
            assert_eq!(words(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn limits_under_a_second_are_written_in_milliseconds() {
        assert_eq!(limit(Duration::from_millis(100)), "100ms");
        assert_eq!(limit(Duration::ZERO), "0s");
        assert_eq!(limit(Duration::from_secs(86_400)), "1d");
        assert_eq!(limit(Duration::from_secs(5_400)), "1h 30m");
    }

    #[test]
    fn negative_and_odd_ages_still_read_well() {
        assert_eq!(age_seconds(-30.0), "-30s");
        assert_eq!(age_seconds(-3_700.5), "-1h 1m");
        assert_eq!(age_seconds(f64::NAN), "0s");
        assert_eq!(age_seconds(0.9), "0s");
    }
}
