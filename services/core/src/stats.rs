//! Order statistics as the product defines them: linear interpolation
//! between the closest ranks, exactly PostgreSQL's `percentile_cont`.

use serde::Serialize;

/// Median, 90th percentile and count of a sample, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub count: u64,
}

impl Summary {
    /// Summarise `values` (reordered in place; no value may be NaN).
    pub fn of(values: &mut [f64]) -> Summary {
        Summary { median: percentile_cont(values, 0.5), p90: percentile_cont(values, 0.9), count: values.len() as u64 }
    }
}

/// The `p` quantile (0 ≤ p ≤ 1) of `values` by linear interpolation, as
/// PostgreSQL's `percentile_cont(p)`; `None` for an empty sample. Reorders
/// `values` (selection, not a full sort: linear time on average).
pub fn percentile_cont(values: &mut [f64], p: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let p = p.clamp(0.0, 1.0);
    let pos = p * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let (_, lo_value, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_value = *lo_value;
    if frac == 0.0 || above.is_empty() {
        return Some(lo_value);
    }
    let hi_value = above.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lo_value + (hi_value - lo_value) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_postgres_percentile_cont() {
        // SELECT percentile_cont(0.5) / (0.9) WITHIN GROUP (ORDER BY v)
        // FROM unnest(ARRAY[...]) v;
        let cases: &[(&[f64], f64, f64)] = &[
            (&[1.0], 1.0, 1.0),
            (&[1.0, 2.0], 1.5, 1.9),
            (&[3.0, 1.0, 2.0], 2.0, 2.8),
            (&[10.0, 20.0, 30.0, 40.0], 25.0, 37.0),
            (&[5.0, 5.0, 5.0, 100.0, 1.0], 5.0, 62.0),
        ];
        for (values, median, p90) in cases {
            let mut v = values.to_vec();
            let s = Summary::of(&mut v);
            assert_eq!(s.count, values.len() as u64);
            assert!((s.median.unwrap_or(f64::NAN) - median).abs() < 1e-9, "median of {values:?}: {s:?}");
            assert!((s.p90.unwrap_or(f64::NAN) - p90).abs() < 1e-9, "p90 of {values:?}: {s:?}");
        }
        assert_eq!(Summary::of(&mut []), Summary { median: None, p90: None, count: 0 });
    }
}
