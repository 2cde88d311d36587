//! Aggregation over windows, machines or periods: always a ratio of sums of the additive fields.

use super::output::{ProductSummary, Summary};
use super::window::{apply_additive, Additive};

fn ms(s: f64) -> u64 {
    (s * 1000.0).round().max(0.0) as u64
}

impl Summary {
    /// Sum the additive fields of `parts` and recompute every ratio from the sums (never an average of
    /// ratios). The window spans the earliest start to the latest end, keeping the first part's kind and
    /// its shift name only when every part shares it; machine and line are the first part's (or `*` when
    /// they differ); products are merged by name; flags are the union; single-cycle distributions cannot
    /// be merged and are dropped. `None` for no parts.
    pub fn aggregate(parts: &[Summary]) -> Option<Summary> {
        let first = parts.first()?;
        let mut a = Additive {
            ideal_ms: Some(0),
            ..Additive::default()
        };
        let mut out = first.clone();
        out.flags.clear();
        out.products.clear();
        out.cycle_time = None;
        for p in parts {
            a.planned_ms += ms(p.planned_time_s);
            a.run_ms += ms(p.run_time_s);
            a.down_ms += ms(p.downtime_s);
            a.setup_ms += ms(p.setup_time_s);
            a.planned_stop_ms += ms(p.planned_stop_s);
            a.unknown_ms += ms(p.unknown_time_s);
            a.down_count += p.downtime_count;
            a.small_count += p.small_stop_count;
            a.small_ms += ms(p.small_stop_time_s);
            a.total += p.total_count;
            a.good += p.good_count;
            a.reject += p.reject_count;
            let has_ideal = p.performance.is_some()
                || p.total_count == 0
                || !p.flags.iter().any(|f| f == "no_ideal_cycle_time");
            a.ideal_ms = match (a.ideal_ms, has_ideal) {
                (Some(s), true) => Some(s + ms(p.ideal_time_s)),
                _ => None,
            };
            if p.window.start < out.window.start {
                out.window.start = p.window.start;
            }
            if p.window.end > out.window.end {
                out.window.end = p.window.end;
            }
            if out.window.shift != p.window.shift {
                out.window.shift = None;
            }
            if out.machine != p.machine {
                out.machine = "*".into();
            }
            if out.line != p.line {
                out.line = "*".to_owned();
            }
            for f in &p.flags {
                if f != "performance_over_100"
                    && f != "low_coverage"
                    && f != "no_ideal_cycle_time"
                    && !out.flags.contains(f)
                {
                    out.flags.push(f.clone());
                }
            }
            for q in &p.products {
                match out.products.iter_mut().find(|x| x.product == q.product) {
                    Some(x) => {
                        x.total_count += q.total_count;
                        x.good_count += q.good_count;
                        x.reject_count += q.reject_count;
                        x.run_time_s = (ms(x.run_time_s) + ms(q.run_time_s)) as f64 / 1000.0;
                    }
                    None => out.products.push(q.clone()),
                }
            }
        }
        for x in &mut out.products {
            x.avg_cycle_time_s = (x.total_count > 0).then(|| x.run_time_s / x.total_count as f64);
        }
        let _: &[ProductSummary] = &out.products;
        apply_additive(&mut out, &a);
        Some(out)
    }
}
