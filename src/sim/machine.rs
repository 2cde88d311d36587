//! One simulated machine as a seeded event sequence in simulated time: jittered cycles, rejects,
//! microstops, breakdowns with reasons, changeovers, planned stops. Pure: time is an argument.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// State codes written to the state register.
pub mod code {
    /// Producing.
    pub const RUNNING: u16 = 1;
    /// Unplanned stop (microstop or breakdown).
    pub const STOPPED: u16 = 2;
    /// Changeover between products.
    pub const SETUP: u16 = 3;
    /// Planned stop (cleaning, maintenance).
    pub const PLANNED_STOP: u16 = 4;
}

/// Stop reason codes written to the reason register (0 while not stopped).
pub const REASONS: [(u16, &str); 6] = [
    (1, "microstop"),
    (2, "jam"),
    (3, "tool breakage"),
    (4, "material shortage"),
    (5, "electrical fault"),
    (6, "cleaning"),
];

/// Fraction of parts rejected.
pub const REJECT_RATE: f64 = 0.03;
/// Chance that a microstop (10–90 s) follows a part.
pub const MICROSTOP_RATE: f64 = 0.01;
/// Chance that a breakdown (3–20 min) follows a part.
pub const BREAKDOWN_RATE: f64 = 0.0005;
/// Simulated seconds between planned stops.
pub const PLANNED_EVERY_S: f64 = 4.0 * 3600.0;

/// The registers a machine exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Running coil.
    pub running: bool,
    /// State code ([`code`]).
    pub state: u16,
    /// Total parts, u32.
    pub total: u32,
    /// Good parts, u16, wraps at 65536.
    pub good: u16,
    /// Rejected parts, u16.
    pub rejects: u16,
    /// Product code 1..=products.
    pub product: u16,
    /// Stop reason code, 0 when not stopped.
    pub reason: u16,
}

/// A simulated machine.
#[derive(Debug, Clone)]
pub struct SimMachine {
    rng: SmallRng,
    /// Ideal cycle time (s) per product code (index 0 = product 1).
    ideal: Vec<f64>,
    snap: Snapshot,
    /// Simulated time (s) of the next event: part done, or end of the current stop.
    next_event: f64,
    parts_to_changeover: u32,
    next_planned: f64,
}

impl SimMachine {
    /// A machine seeded by `seed`, with one ideal cycle time per product.
    pub fn new(seed: u64, ideal: Vec<f64>) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let products = ideal.len().max(1) as u16;
        let snap = Snapshot {
            running: true,
            state: code::RUNNING,
            total: rng.random_range(10_000..1_000_000),
            // Starts near the wrap so a demo shows the 16-bit rollover early.
            good: rng.random_range(65_000..=65_535),
            rejects: rng.random_range(0..1_000),
            product: rng.random_range(1..=products),
            reason: 0,
        };
        let mut m = SimMachine {
            rng,
            ideal,
            snap,
            next_event: 0.0,
            parts_to_changeover: 0,
            next_planned: 0.0,
        };
        m.parts_to_changeover = m.rng.random_range(800..2000);
        m.next_planned = PLANNED_EVERY_S * m.rng.random_range(0.3..1.0);
        m.next_event = m.cycle();
        m
    }

    fn cycle(&mut self) -> f64 {
        let i = usize::from(self.snap.product.saturating_sub(1));
        let ideal = self.ideal.get(i).copied().unwrap_or(1.0);
        ideal * self.rng.random_range(0.97..1.25)
    }

    fn stop(&mut self, now: f64, state: u16, reason: u16, secs: std::ops::Range<f64>) {
        self.snap.running = false;
        self.snap.state = state;
        self.snap.reason = reason;
        self.next_event = now + self.rng.random_range(secs);
    }

    /// Advance simulated time to `t` seconds (no effect when `t` is in the past).
    pub fn advance(&mut self, t: f64) {
        while self.next_event <= t {
            let now = self.next_event;
            if self.snap.state == code::RUNNING {
                self.snap.total = self.snap.total.wrapping_add(1);
                if self.rng.random_bool(REJECT_RATE) {
                    self.snap.rejects = self.snap.rejects.wrapping_add(1);
                } else {
                    self.snap.good = self.snap.good.wrapping_add(1);
                }
                self.parts_to_changeover = self.parts_to_changeover.saturating_sub(1);
                let r: f64 = self.rng.random();
                if self.parts_to_changeover == 0 {
                    self.stop(now, code::SETUP, 0, 300.0..900.0);
                } else if now >= self.next_planned {
                    self.next_planned += PLANNED_EVERY_S;
                    self.stop(now, code::PLANNED_STOP, 6, 600.0..1200.0);
                } else if r < BREAKDOWN_RATE {
                    let reason = self.rng.random_range(2..=5);
                    self.stop(now, code::STOPPED, reason, 180.0..1200.0);
                } else if r < BREAKDOWN_RATE + MICROSTOP_RATE {
                    self.stop(now, code::STOPPED, 1, 10.0..90.0);
                } else {
                    self.next_event = now + self.cycle();
                }
            } else {
                if self.snap.state == code::SETUP {
                    let n = self.ideal.len().max(1) as u16;
                    self.snap.product = self.snap.product % n + 1;
                    self.parts_to_changeover = self.rng.random_range(800..2000);
                }
                self.snap.running = true;
                self.snap.state = code::RUNNING;
                self.snap.reason = 0;
                self.next_event = now + self.cycle();
            }
        }
    }

    /// The registers now.
    pub fn snapshot(&self) -> Snapshot {
        self.snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_production_whatever_the_read_pattern() {
        let mut a = SimMachine::new(7, vec![2.0, 3.0]);
        let mut b = SimMachine::new(7, vec![2.0, 3.0]);
        for i in 1..=1000 {
            a.advance(f64::from(i) * 36.0);
        }
        b.advance(36_000.0);
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn ten_hours_show_every_behaviour() {
        let mut m = SimMachine::new(3, vec![2.0, 3.0, 4.5]);
        let start = m.snapshot();
        let (mut states, mut reasons, mut products) = (vec![], vec![], vec![]);
        for s in 0..36_000 {
            m.advance(f64::from(s));
            let n = m.snapshot();
            states.push(n.state);
            reasons.push(n.reason);
            products.push(n.product);
            assert_eq!(n.running, n.state == code::RUNNING);
            assert!((1..=4).contains(&n.state));
        }
        for c in 1..=4 {
            assert!(states.contains(&c), "state {c} seen");
        }
        assert!(reasons.contains(&1) && reasons.iter().any(|r| (2..=5).contains(r)));
        products.dedup();
        assert!(products.len() > 1, "changeovers change the product");
        let end = m.snapshot();
        let parts = end.total.wrapping_sub(start.total);
        let rejects = end.rejects.wrapping_sub(start.rejects);
        let good = end.good.wrapping_sub(start.good);
        assert_eq!(u32::from(good) + u32::from(rejects), parts);
        let rate = f64::from(rejects) / f64::from(parts);
        assert!((0.01..0.06).contains(&rate), "reject rate {rate}");
        // Availability below one, but most of the time producing.
        let running = states.iter().filter(|&&s| s == code::RUNNING).count();
        let share = running as f64 / 36_000.0;
        assert!((0.5..0.97).contains(&share), "running {share}");
    }
}
