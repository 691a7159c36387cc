//! How many instances a pool wants, from its load: Knative's KPA, simplified to what vestibule
//! can see exactly (it is in every request's path, so in-flight counts need no scraping).
//!
//! - The load (requests in flight plus requests held) is sampled a few times a second.
//! - Steady scaling follows its average over the stable window; a burst is judged over a
//!   tenth of it (the panic window). Once the burst window asks for twice the ready
//!   instances, the pool panics: for a whole stable window it never shrinks.
//! - One step removes at most half the ready instances, and the highest count wanted during
//!   `scale-down-delay` is kept, so a brief lull does not remove an instance a user will need.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Instant;
use crate::config::PoolSettings;

pub struct Autoscaler {
    settings: PoolSettings,
    samples: VecDeque<(Instant, f64)>,
    panic_until: Option<Instant>,
    panic_peak: u32,
    wanted: VecDeque<(Instant, u32)>,
}

/// A decision and why it was made, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub want: u32,
    pub panic: bool,
}

impl Autoscaler {
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            samples: VecDeque::new(),
            panic_until: None,
            panic_peak: 0,
            wanted: VecDeque::new(),
        }
    }

    pub fn record(&mut self, now: Instant, load: usize) {
        self.samples.push_back((now, load as f64));
        let window = self.settings.stable_window;
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            self.samples.pop_front();
        }
    }

    fn average(&self, now: Instant, window: Duration) -> f64 {
        let recent: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= window)
            .map(|(_, load)| *load)
            .collect();
        if recent.is_empty() {
            return 0.0;
        }
        recent.iter().sum::<f64>() / recent.len() as f64
    }

    /// The instances wanted now, with `ready` instances serving and `queued` requests held.
    pub fn decide(&mut self, now: Instant, ready: u32, queued: usize) -> Decision {
        let s = &self.settings;
        let target = f64::from(s.target_concurrency.max(1));
        let stable = self.average(now, s.stable_window);
        let burst = self.average(now, s.stable_window / 10);
        let by_stable = (stable / target).ceil() as u32;
        let by_burst = (burst / target).ceil() as u32;
        if f64::from(by_burst) / f64::from(ready.max(1)) >= 2.0 {
            self.panic_until = Some(now + s.stable_window);
        }
        let panic = self.panic_until.is_some_and(|until| now < until);
        let mut want = if panic {
            self.panic_peak = self.panic_peak.max(by_stable).max(by_burst);
            self.panic_peak
        } else {
            self.panic_peak = 0;
            by_stable
        };
        // At most half the ready instances go in one step.
        want = want.max(ready / 2);
        self.wanted.push_back((now, want));
        let delay = s.scale_down_delay;
        while self
            .wanted
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > delay)
        {
            self.wanted.pop_front();
        }
        want = self.wanted.iter().map(|(_, w)| *w).max().unwrap_or(want);
        want = want.clamp(s.min_instances, s.max_instances);
        if queued > 0 {
            want = want.max(1);
        }
        Decision { want, panic }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PoolSettings {
        PoolSettings {
            min_instances: 0,
            max_instances: 8,
            target_concurrency: 10,
            scale_down_delay: Duration::from_secs(10),
            session_affinity: false,
            stable_window: Duration::from_secs(60),
            queue_limit: 100,
            client_rate_limit: None,
        }
    }

    /// Feeds `load` for `secs` seconds, 5 samples a second, deciding each second.
    fn run(a: &mut Autoscaler, t: &mut Instant, secs: u64, load: usize, ready: u32) -> Decision {
        let mut last = a.decide(*t, ready, 0);
        for _ in 0..secs {
            for _ in 0..5 {
                *t += Duration::from_millis(200);
                a.record(*t, load);
            }
            last = a.decide(*t, ready, 0);
        }
        last
    }

    #[test]
    fn a_held_request_at_zero_asks_for_one_instance() {
        let mut a = Autoscaler::new(settings());
        let now = Instant::now();
        a.record(now, 1);
        assert_eq!(a.decide(now, 0, 1).want, 1);
    }

    #[test]
    fn a_burst_panics_and_scales_out_to_the_load_within_the_maximum() {
        let mut a = Autoscaler::new(settings());
        let mut t = Instant::now();
        let d = run(&mut a, &mut t, 2, 500, 1);
        assert!(d.panic);
        assert_eq!(d.want, 8, "500 in flight / 10 per instance, capped at 8");
    }

    #[test]
    fn steady_load_sizes_the_pool_by_its_target() {
        let mut a = Autoscaler::new(settings());
        let mut t = Instant::now();
        let d = run(&mut a, &mut t, 70, 25, 3);
        assert_eq!((d.want, d.panic), (3, false));
    }

    #[test]
    fn after_the_load_ends_the_pool_shrinks_by_halves_and_reaches_zero_after_window_and_delay() {
        let mut a = Autoscaler::new(settings());
        let mut t = Instant::now();
        let mut ready = run(&mut a, &mut t, 70, 40, 4).want;
        assert_eq!(ready, 4);
        let mut zero_after = None;
        for second in 1..=120u64 {
            let want = run(&mut a, &mut t, 1, 0, ready).want;
            assert!(
                want >= ready / 2,
                "at most half go in one step: {ready} -> {want}"
            );
            ready = want;
            if want == 0 && zero_after.is_none() {
                zero_after = Some(second);
            }
        }
        let zero_after = zero_after.expect("the pool reaches zero");
        // The stable window (60 s) must forget the load, then the delay (10 s) must pass.
        assert!((70..=75).contains(&zero_after), "zero after {zero_after} s");
    }

    #[test]
    fn fast_sequential_requests_do_not_scale_out() {
        let mut a = Autoscaler::new(settings());
        let mut t = Instant::now();
        // One request at a time, in flight at one sample in five.
        let mut last = a.decide(t, 1, 0);
        for i in 0..300 {
            t += Duration::from_millis(200);
            a.record(t, usize::from(i % 5 == 0));
            if i % 5 == 4 {
                last = a.decide(t, 1, 0);
            }
        }
        assert_eq!(last.want, 1);
    }

    #[test]
    fn the_minimum_is_kept_without_load() {
        let mut s = settings();
        s.min_instances = 2;
        let mut a = Autoscaler::new(s);
        let mut t = Instant::now();
        assert_eq!(run(&mut a, &mut t, 5, 0, 0).want, 2);
    }
}
