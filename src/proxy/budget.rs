//! The bound on bytes held back for hashing, shared by all requests.
//!
//! A response is buffered whole before its content ETag can be sent, so without a global
//! bound a burst of large responses could hold any amount of memory. A request that cannot
//! reserve what it needs streams its response untagged instead (it is tagged once stored).

use crate::metrics::METRICS;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held back for hashing by all requests together.
#[derive(Default)]
pub struct BufferBudget {
    used: AtomicUsize,
}

impl BufferBudget {
    /// Reserve `n` more bytes if the total stays within `limit`; released when `held` drops.
    pub fn try_reserve(&self, held: &mut Held<'_>, n: usize, limit: usize) -> bool {
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + n <= limit).then_some(cur + n)
            })
            .is_ok();
        if ok {
            held.bytes += n;
            METRICS.etag_buffer_bytes.add(n as i64);
        }
        ok
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            METRICS.etag_buffer_bytes.sub(n as i64);
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty reservation, to grow with [`Self::try_reserve`].
    pub fn hold(&self) -> Held<'_> {
        Held {
            budget: self,
            bytes: 0,
        }
    }
}

/// A reservation returned to the budget when dropped, whatever path the request takes.
pub struct Held<'a> {
    budget: &'a BufferBudget,
    bytes: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_return_when_dropped() {
        let budget = BufferBudget::default();
        let mut a = budget.hold();
        assert!(budget.try_reserve(&mut a, 60, 100));
        {
            let mut b = budget.hold();
            assert!(!budget.try_reserve(&mut b, 50, 100), "over the limit");
            assert!(budget.try_reserve(&mut b, 40, 100));
            assert_eq!(budget.used(), 100);
        }
        assert_eq!(budget.used(), 60, "b's bytes came back");
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
