//! Refresh outcomes of the last 24 hours as inline SVG: one stacked bar per hour (UTC), a legend.

use chrono::{DateTime, Duration, DurationRound, Utc};
use shared::store::HourlyOutcome;

use maud::{Markup, html};

use super::locale::Locale;

/// Bottom to top, with the fill of each.
const SERIES: [(&str, &str); 4] =
    [("healthy", "#1a7f37"), ("refreshed", "#0969da"), ("retrying", "#d4a72c"), ("failed", "#cf222e")];
const HOURS: usize = 24;
const W: f64 = 720.0;
const H: f64 = 210.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Counts per hour slot (oldest first) and series, for the 24 hours ending with the current one.
fn buckets(rows: &[HourlyOutcome], first: DateTime<Utc>) -> [[i64; 4]; HOURS] {
    let mut out = [[0i64; 4]; HOURS];
    for r in rows {
        let slot = (r.hour - first).num_hours();
        let Some(series) = SERIES.iter().position(|(name, _)| *name == r.outcome) else { continue };
        if let Ok(slot) = usize::try_from(slot)
            && slot < HOURS
            && r.hour >= first
        {
            out[slot][series] += r.count.max(0);
        }
    }
    out
}

/// The smallest 1, 2 or 5 times a power of ten at or above `n` (at least 1).
fn nice_max(n: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

pub fn chart(locale: Locale, rows: &[HourlyOutcome], now: DateTime<Utc>) -> Markup {
    let t = locale.t();
    let current = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let first = current - Duration::hours(HOURS as i64 - 1);
    let counts = buckets(rows, first);
    let labels = [t.outcome_healthy, t.outcome_refreshed, t.outcome_retrying, t.outcome_failed];
    let top = counts.iter().map(|c| c.iter().sum::<i64>()).max().unwrap_or(0);
    let ymax = nice_max(top);
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let slot_w = plot_w / HOURS as f64;
    let y = |v: i64| TOP + plot_h - plot_h * v as f64 / ymax as f64;
    let one = |v: f64| format!("{v:.1}");
    let mut ticks = vec![0, ymax / 2, ymax];
    ticks.dedup();
    let totals: Vec<i64> = (0..SERIES.len()).map(|s| counts.iter().map(|c| c[s]).sum()).collect();
    html! {
        h2 { (t.chart_title) }
        svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-labelledby="chart-title" {
            title #chart-title { (t.chart_title) }
            @for v in ticks {
                @if v > 0 {
                    line x1=(LEFT) x2=(W - RIGHT) y1=(one(y(v))) y2=(one(y(v))) stroke="#d1d9e0" stroke-width="1" {}
                }
                text x=(LEFT - 6.0) y=(one(y(v) + 4.0)) text-anchor="end" { (v) }
            }
            @for (i, slot) in counts.iter().enumerate() {
                @let hour = first + Duration::hours(i as i64);
                @let x = LEFT + slot_w * i as f64 + slot_w * 0.15;
                @for (s, count) in slot.iter().enumerate() {
                    @if *count > 0 {
                        @let base: i64 = slot[..s].iter().sum();
                        @let (y_top, y_bottom) = (y(base + count), y(base));
                        rect class={ "bar " (SERIES[s].0) } x=(one(x)) y=(one(y_top)) width=(one(slot_w * 0.7))
                            height=(one((y_bottom - y_top).max(0.5))) fill=(SERIES[s].1) {
                            title { (hour.format("%H:00")) " UTC · " (labels[s]) ": " (count) }
                        }
                    }
                }
                @if i % 3 == 0 || i == HOURS - 1 {
                    text x=(one(LEFT + slot_w * (i as f64 + 0.5))) y=(H - 6.0) text-anchor="middle" { (hour.format("%H:00")) }
                }
            }
            line x1=(LEFT) x2=(W - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) stroke="#8c959f" stroke-width="1" {}
            @if top == 0 {
                text.empty x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle" { (t.chart_empty) }
            }
        }
        div.legend {
            @for (((name, _), label), total) in SERIES.iter().zip(labels).zip(totals) {
                span { i class={ "o-" (name) } {} (label) " (" (total) ")" }
            }
            span { (t.times_utc) }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::dashboard::locale::Lang;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, h, 0, 0).single().expect("time")
    }

    #[test]
    fn nice_maxima() {
        assert_eq!([0, 1, 2, 3, 6, 11, 40, 51, 999].map(nice_max), [1, 1, 2, 5, 10, 20, 50, 100, 1000]);
    }

    #[test]
    fn stacks_by_hour_and_ignores_what_is_outside() {
        let now = at(12) + Duration::minutes(30);
        let rows = vec![
            HourlyOutcome { hour: at(12), outcome: "healthy".into(), count: 3 },
            HourlyOutcome { hour: at(12), outcome: "failed".into(), count: 1 },
            HourlyOutcome { hour: at(0), outcome: "refreshed".into(), count: 2 },
            HourlyOutcome { hour: at(12) - Duration::hours(30), outcome: "healthy".into(), count: 9 },
            HourlyOutcome { hour: at(11), outcome: "other".into(), count: 9 },
        ];
        let b = buckets(&rows, at(12) - Duration::hours(23));
        assert_eq!(b[23], [3, 0, 0, 1]);
        assert_eq!(b[11], [0, 2, 0, 0]);
        assert_eq!(b.iter().flatten().sum::<i64>(), 6);
        let svg = chart(Locale { lang: Lang::En, explicit: false }, &rows, now).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("Valid (3)") && svg.contains("Failed (1)") && svg.contains("Refreshed (2)"));
        assert!(!svg.contains("No checks"));
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = chart(Locale { lang: Lang::Vi, explicit: false }, &[], at(5)).into_string();
        assert!(svg.contains("Không có lần kiểm tra nào"));
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
}
