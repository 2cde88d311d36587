//! Per-machine reorder buffer: samples within the reorder window are released in time order.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Item;

/// Buffered items sorted by time (arrival order among equal times).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReorderBuffer {
    items: VecDeque<Item>,
}

impl ReorderBuffer {
    /// Insert in time order; `false` when an identical item (same time, signal and value) is already held.
    pub fn insert(&mut self, item: Item) -> bool {
        let mut pos = self.items.len();
        while pos > 0 {
            let prev = &self.items[pos - 1];
            if prev.ts < item.ts {
                break;
            }
            if prev.ts == item.ts && prev.signal == item.signal && prev.val == item.val {
                return false;
            }
            if prev.ts == item.ts {
                // keep scanning equal times for duplicates, but insert after them
                let mut p = pos - 1;
                while p > 0 && self.items[p - 1].ts == item.ts {
                    let q = &self.items[p - 1];
                    if q.signal == item.signal && q.val == item.val {
                        return false;
                    }
                    p -= 1;
                }
                break;
            }
            pos -= 1;
        }
        self.items.insert(pos, item);
        true
    }

    /// Remove and return the oldest item if it is older than `before`.
    pub fn pop_before(&mut self, before: i64) -> Option<Item> {
        if self.items.front().is_some_and(|i| i.ts < before) {
            self.items.pop_front()
        } else {
            None
        }
    }

    /// Remove and return the oldest item.
    pub fn pop(&mut self) -> Option<Item> {
        self.items.pop_front()
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Val;
    use crate::sample::Signal;

    fn it(ts: i64, v: i64) -> Item {
        Item {
            ts,
            signal: Signal::TotalCount,
            val: Val::Int(v),
        }
    }

    #[test]
    fn out_of_order_items_come_out_sorted() {
        let mut b = ReorderBuffer::default();
        for (ts, v) in [(10, 1), (30, 3), (20, 2), (40, 4)] {
            assert!(b.insert(it(ts, v)));
        }
        let got: Vec<i64> = std::iter::from_fn(|| b.pop_before(35))
            .map(|i| i.ts)
            .collect();
        assert_eq!(got, vec![10, 20, 30]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn exact_duplicates_are_refused() {
        let mut b = ReorderBuffer::default();
        assert!(b.insert(it(10, 1)));
        assert!(b.insert(it(10, 2)));
        assert!(!b.insert(it(10, 1)));
        assert!(!b.insert(it(10, 2)));
        assert_eq!(b.len(), 2);
    }
}
