//! A histogram of whole-number observations in fixed buckets, shared between threads through
//! atomics, in the shape Prometheus exports: cumulative counts per upper bound, a sum and a
//! count.

use std::sync::atomic::{AtomicU64, Ordering};

/// Observations counted per bucket. Bucket `i` counts values at most `bounds[i]` (and above
/// the bound before); one more bucket counts the values above every bound.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// A histogram's figures at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramFigures {
    /// The buckets' upper bounds, ascending.
    pub bounds: &'static [u64],
    /// Per bound, the observations at most that bound.
    pub cumulative: Vec<u64>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// The observations' sum.
    pub sum: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Histogram {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "bucket bounds ascend"
        );
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The figures now (each read on its own, so concurrent observations may be half in).
    #[must_use]
    pub fn figures(&self) -> HistogramFigures {
        let mut running = 0;
        let mut cumulative: Vec<u64> = self
            .counts
            .iter()
            .map(|count| {
                running += count.load(Ordering::Relaxed);
                running
            })
            .collect();
        let count = cumulative.pop().expect("one bucket past the bounds");
        HistogramFigures {
            bounds: self.bounds,
            cumulative,
            count,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_count_cumulatively() {
        let histogram = Histogram::new(&[1, 10, 100]);
        for value in [0, 1, 2, 10, 11, 1000] {
            histogram.observe(value);
        }
        let figures = histogram.figures();
        assert_eq!(figures.cumulative, vec![2, 4, 5]);
        assert_eq!(figures.count, 6);
        assert_eq!(figures.sum, 1024);
    }
}
