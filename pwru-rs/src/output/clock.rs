//! `--timestamp absolute`: kernel monotonic time → wall-clock time, formatted without allocation.
//!
//! Events carry `bpf_ktime_get_ns()` (CLOCK_MONOTONIC). Adding the REALTIME − MONOTONIC offset
//! taken once at start gives the moment the kernel saw the packet, not when userspace printed it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns.
    realtime_minus_monotonic: i64,
    /// Local time zone's offset from UTC, seconds (`tm_gmtoff` at start).
    utc_offset_s: i64,
}

impl WallClock {
    pub fn now() -> Self {
        let realtime = clock_ns(libc::CLOCK_REALTIME);
        let monotonic = clock_ns(libc::CLOCK_MONOTONIC);
        Self {
            realtime_minus_monotonic: realtime - monotonic,
            utc_offset_s: local_utc_offset(realtime),
        }
    }

    pub fn fixed(realtime_minus_monotonic: i64, utc_offset_s: i64) -> Self {
        Self {
            realtime_minus_monotonic,
            utc_offset_s,
        }
    }

    /// Unix-epoch nanoseconds of a `bpf_ktime_get_ns()` value.
    pub fn wall_ns(&self, ktime_ns: u64) -> u64 {
        (ktime_ns as i64)
            .saturating_add(self.realtime_minus_monotonic)
            .max(0) as u64
    }

    /// `HH:MM:SS.uuuuuu` in local time, as pwru's TIME column.
    pub fn write_time_of_day(&self, out: &mut Vec<u8>, wall_ns: u64) {
        let local = self.local_civil(wall_ns);
        write_2(out, local.hour);
        out.push(b':');
        write_2(out, local.minute);
        out.push(b':');
        write_2(out, local.second);
        out.push(b'.');
        write_padded(out, (local.nanos / 1000) as u64, 6);
    }

    /// RFC 3339 with nanoseconds and the local offset, e.g. `2026-11-23T18:20:01.123456789+00:00`.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>, wall_ns: u64) {
        let local = self.local_civil(wall_ns);
        write_padded(out, local.year as u64, 4);
        out.push(b'-');
        write_2(out, local.month);
        out.push(b'-');
        write_2(out, local.day);
        out.push(b'T');
        write_2(out, local.hour);
        out.push(b':');
        write_2(out, local.minute);
        out.push(b':');
        write_2(out, local.second);
        out.push(b'.');
        write_padded(out, local.nanos as u64, 9);
        let offset_min = self.utc_offset_s / 60;
        out.push(if offset_min < 0 { b'-' } else { b'+' });
        write_2(out, (offset_min.abs() / 60) as u32);
        out.push(b':');
        write_2(out, (offset_min.abs() % 60) as u32);
    }

    fn local_civil(&self, wall_ns: u64) -> Civil {
        let secs = (wall_ns / 1_000_000_000) as i64 + self.utc_offset_s;
        let nanos = (wall_ns % 1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            nanos,
        }
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

fn write_2(out: &mut Vec<u8>, value: u32) {
    write_padded(out, value as u64, 2);
}

fn write_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(value);
    out.resize(out.len() + width.saturating_sub(digits.len()), b'0');
    out.extend_from_slice(digits.as_bytes());
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn local_utc_offset(realtime_ns: i64) -> i64 {
    let t: libc::time_t = realtime_ns / 1_000_000_000;
    // SAFETY: localtime_r writes into our zeroed tm and reads only `t`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn formats_wall_time() {
        // 2026-11-23T18:20:01.123456789Z, seen at ktime 5 s.
        let wall = 1_795_458_001_123_456_789u64;
        let clock = WallClock::fixed(wall as i64 - 5_000_000_000, 0);
        assert_eq!(clock.wall_ns(5_000_000_000), wall);
        let mut out = Vec::new();
        clock.write_rfc3339(&mut out, wall);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-23T18:20:01.123456789+00:00"
        );
        let mut out = Vec::new();
        clock.write_time_of_day(&mut out, wall);
        assert_eq!(String::from_utf8(out).unwrap(), "18:20:01.123456");

        let india = WallClock::fixed(0, 5 * 3600 + 1800);
        let mut out = Vec::new();
        india.write_rfc3339(&mut out, wall);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-23T23:50:01.123456789+05:30"
        );
        let west = WallClock::fixed(0, -7 * 3600);
        let mut out = Vec::new();
        west.write_rfc3339(&mut out, wall);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-23T11:20:01.123456789-07:00"
        );
    }
}
