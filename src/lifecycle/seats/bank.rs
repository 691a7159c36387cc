//! The seats of one app: which shared containers ("delegates") exist, who sits where, who waits,
//! and what the scaler should do next. Pure bookkeeping under one lock, so a claim and a
//! scale-down can never take the same seat.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use tokio::sync::oneshot;

use crate::clock::Instant;
use crate::config::SeatSettings;

/// A claimed seat: the container the user's instance is routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub delegate: String,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready(SocketAddr),
    /// Takes no new claims; stopped once the last one is released.
    ToRemove,
}

#[derive(Debug)]
struct Delegate {
    state: State,
    claims: HashSet<String>,
}

/// What the scaler should do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub start: u32,
    /// Delegates already taken out of the bank, to stop.
    pub stop: Vec<String>,
}

/// Seat counts, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub free: u32,
    pub claimed: u32,
    pub starting: u32,
    pub waiting: u32,
}

pub struct Bank {
    settings: SeatSettings,
    delegates: HashMap<String, Delegate>,
    waiters: VecDeque<(String, oneshot::Sender<Seat>)>,
    last_scale_up: Option<Instant>,
    surplus_since: Option<Instant>,
}

impl Bank {
    pub fn new(settings: SeatSettings) -> Self {
        Self {
            settings,
            delegates: HashMap::new(),
            waiters: VecDeque::new(),
            last_scale_up: None,
            surplus_since: None,
        }
    }

    fn free_on(&self, d: &Delegate) -> u32 {
        match d.state {
            State::Ready(_) => self
                .settings
                .per_container
                .saturating_sub(d.claims.len() as u32),
            _ => 0,
        }
    }

    /// A free seat for `claim`, packed onto the ready container with the most users already,
    /// so that whole containers fall free and can be removed.
    pub fn claim(&mut self, claim: &str) -> Option<Seat> {
        let (id, address) = self
            .delegates
            .iter()
            .filter(|(_, d)| self.free_on(d) > 0)
            .max_by_key(|(id, d)| (d.claims.len(), std::cmp::Reverse((*id).clone())))
            .and_then(|(id, d)| match d.state {
                State::Ready(address) => Some((id.clone(), address)),
                _ => None,
            })?;
        self.delegates
            .get_mut(&id)?
            .claims
            .insert(claim.to_string());
        Some(Seat {
            delegate: id,
            address,
        })
    }

    /// Queues `claim` for the next free seat; the oldest waiter is served first.
    pub fn wait(&mut self, claim: &str) -> oneshot::Receiver<Seat> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back((claim.to_string(), tx));
        rx
    }

    pub fn stop_waiting(&mut self, claim: &str) {
        self.waiters.retain(|(c, _)| c != claim);
    }

    pub fn starting(&mut self, delegate: &str) {
        self.delegates.insert(
            delegate.to_string(),
            Delegate {
                state: State::Starting,
                claims: HashSet::new(),
            },
        );
    }

    /// A container answered: its seats go to the oldest waiters first (a reservation, so a
    /// newcomer cannot take a seat someone waited for). Returns who got one.
    pub fn ready(
        &mut self,
        delegate: &str,
        address: SocketAddr,
    ) -> Vec<(String, oneshot::Sender<Seat>, Seat)> {
        let Some(d) = self.delegates.get_mut(delegate) else {
            return Vec::new();
        };
        if d.state == State::ToRemove {
            // Retired while it started: the next plan stops it.
            return Vec::new();
        }
        d.state = State::Ready(address);
        let mut served = Vec::new();
        while let Some(d) = self.delegates.get(delegate)
            && self.free_on(d) > 0
            && let Some((claim, tx)) = self.waiters.pop_front()
        {
            if tx.is_closed() {
                continue;
            }
            if let Some(d) = self.delegates.get_mut(delegate) {
                d.claims.insert(claim.clone());
            }
            let seat = Seat {
                delegate: delegate.to_string(),
                address,
            };
            served.push((claim, tx, seat));
        }
        served
    }

    /// A container died or failed to start: it is forgotten, and the claims on it returned so
    /// their instances can be failed. Its seats are never handed out again.
    pub fn gone(&mut self, delegate: &str) -> Vec<String> {
        self.delegates
            .remove(delegate)
            .map(|d| d.claims.into_iter().collect())
            .unwrap_or_default()
    }

    /// A user left their seat. Without re-use the container is finished with; a container to be
    /// removed goes once its last user has left. Returns a container to stop, if any.
    pub fn release(&mut self, claim: &str) -> Option<String> {
        let (id, d) = self
            .delegates
            .iter_mut()
            .find(|(_, d)| d.claims.contains(claim))?;
        d.claims.remove(claim);
        if !self.settings.allow_reuse {
            d.state = State::ToRemove;
        }
        if d.state == State::ToRemove && d.claims.is_empty() {
            let id = id.clone();
            self.delegates.remove(&id);
            return Some(id);
        }
        None
    }

    /// Takes containers out of service (all, or one): free seats go at once, claimed ones when
    /// their users leave, and the floor is refilled with new containers. Returns how many.
    pub fn retire(&mut self, only: Option<&str>) -> usize {
        let mut n = 0;
        for (id, d) in self.delegates.iter_mut() {
            if only.is_none_or(|o| o == id) {
                d.state = State::ToRemove;
                n += 1;
            }
        }
        n
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            waiting: self
                .waiters
                .iter()
                .filter(|(_, tx)| !tx.is_closed())
                .count() as u32,
            ..Counts::default()
        };
        for d in self.delegates.values() {
            c.free += self.free_on(d);
            c.claimed += d.claims.len() as u32;
            if d.state == State::Starting {
                c.starting += 1;
            }
        }
        c
    }

    /// ShinyProxy's floor rule: keep `minimum-seats-available` free seats beyond the waiters;
    /// remove whole free containers once the surplus has lasted `scale-down-delay` (counted from
    /// the later of the last scale-up and the moment the surplus appeared).
    pub fn plan(&mut self, now: Instant) -> Plan {
        self.waiters.retain(|(_, tx)| !tx.is_closed());
        let spc = i64::from(self.settings.per_container.max(1));
        let c = self.counts();
        let surplus = i64::from(c.free) + spc * i64::from(c.starting)
            - i64::from(c.waiting)
            - i64::from(self.settings.minimum_available);
        let mut plan = Plan::default();
        if surplus < 0 {
            plan.start = u32::try_from((-surplus + spc - 1) / spc).unwrap_or(0);
            self.last_scale_up = Some(now);
            self.surplus_since = None;
        } else if c.starting == 0 && surplus >= spc {
            let since = *self.surplus_since.get_or_insert(now);
            let from = self.last_scale_up.map_or(since, |up| up.max(since));
            if now.duration_since(from) >= self.settings.scale_down_delay {
                let removable = usize::try_from(surplus / spc).unwrap_or(0);
                let spare: Vec<String> = self
                    .delegates
                    .iter()
                    .filter(|(_, d)| matches!(d.state, State::Ready(_)) && d.claims.is_empty())
                    .map(|(id, _)| id.clone())
                    .take(removable)
                    .collect();
                for id in &spare {
                    self.delegates.remove(id);
                }
                plan.stop = spare;
                self.surplus_since = None;
            }
        } else {
            self.surplus_since = None;
        }
        // Containers marked for removal that nobody uses any more.
        let finished: Vec<String> = self
            .delegates
            .iter()
            .filter(|(_, d)| d.state == State::ToRemove && d.claims.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            self.delegates.remove(&id);
            plan.stop.push(id);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(min: u32, spc: u32, reuse: bool) -> SeatSettings {
        SeatSettings {
            minimum_available: min,
            per_container: spc,
            allow_reuse: reuse,
            scale_down_delay: Duration::from_secs(120),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_floor_with_three_seats_per_container_and_a_minimum_of_two() {
        let mut b = Bank::new(settings(2, 3, true));
        let now = Instant::now();
        assert_eq!(b.plan(now).start, 1, "one container gives three free seats");
        b.starting("d1");
        assert_eq!(
            b.plan(now).start,
            0,
            "a starting container counts its seats"
        );
        b.ready("d1", addr(1));
        assert_eq!(b.counts().free, 3);
        b.claim("u1").expect("a seat");
        b.claim("u2").expect("a seat");
        assert_eq!(
            b.plan(now).start,
            1,
            "one free seat is below the minimum of two"
        );
    }

    #[test]
    fn waiters_get_seats_in_order_and_a_newcomer_cannot_take_a_reserved_one() {
        let mut b = Bank::new(settings(0, 1, true));
        let mut first = b.wait("w1");
        let _second = b.wait("w2");
        assert_eq!(b.plan(Instant::now()).start, 2, "one container per waiter");
        b.starting("d1");
        b.starting("d2");
        let served = b.ready("d1", addr(1));
        assert_eq!(served.len(), 1);
        let (claim, tx, seat) = served.into_iter().next().expect("served");
        assert_eq!(claim, "w1", "the oldest waiter first");
        tx.send(seat.clone()).expect("send");
        assert_eq!(first.try_recv().expect("a seat"), seat);
        assert_eq!(b.claim("newcomer"), None, "d1's only seat went to w1");
    }

    #[test]
    fn seats_are_packed_so_whole_containers_fall_free() {
        let mut b = Bank::new(settings(0, 2, true));
        for (d, port) in [("d1", 1), ("d2", 2)] {
            b.starting(d);
            b.ready(d, addr(port));
        }
        let a = b.claim("u1").expect("seat");
        let c = b.claim("u2").expect("seat");
        assert_eq!(
            a.delegate, c.delegate,
            "the second user joins the first one's container"
        );
    }

    #[test]
    fn without_reuse_a_released_container_is_stopped_and_replaced() {
        let mut b = Bank::new(settings(1, 1, false));
        b.starting("d1");
        b.ready("d1", addr(1));
        b.claim("u1").expect("seat");
        assert_eq!(
            b.release("u1"),
            Some("d1".into()),
            "used once, then removed"
        );
        assert_eq!(
            b.plan(Instant::now()).start,
            1,
            "and replaced to keep one free"
        );
    }

    #[test]
    fn a_dead_container_hands_out_nothing_and_gives_back_its_claims() {
        let mut b = Bank::new(settings(1, 2, true));
        b.starting("d1");
        b.ready("d1", addr(1));
        b.claim("u1").expect("seat");
        assert_eq!(b.gone("d1"), vec!["u1".to_string()]);
        assert_eq!(b.claim("u2"), None, "no seat on a dead container");
    }

    #[test]
    fn retired_containers_keep_their_users_until_they_leave_and_are_replaced() {
        let mut b = Bank::new(settings(1, 2, true));
        b.starting("d1");
        b.ready("d1", addr(1));
        b.claim("u1").expect("seat");
        assert_eq!(b.retire(None), 1);
        assert_eq!(b.claim("u2"), None, "a retired container takes no one new");
        let plan = b.plan(Instant::now());
        assert_eq!(
            (plan.start, plan.stop.len()),
            (1, 0),
            "refilled; d1 still has a user"
        );
        assert_eq!(
            b.release("u1"),
            Some("d1".into()),
            "stopped once its last user left"
        );
    }

    #[test]
    fn surplus_containers_go_only_after_the_delay_and_only_when_all_free() {
        let mut b = Bank::new(settings(1, 1, true));
        let t0 = Instant::now();
        for (d, port) in [("d1", 1), ("d2", 2), ("d3", 3)] {
            b.starting(d);
            b.ready(d, addr(port));
        }
        b.claim("u1").expect("seat");
        assert!(b.plan(t0).stop.is_empty(), "the surplus has just appeared");
        assert!(b.plan(t0 + Duration::from_secs(119)).stop.is_empty());
        let plan = b.plan(t0 + Duration::from_secs(121));
        assert_eq!(
            plan.stop.len(),
            1,
            "two free, one kept as the minimum: {plan:?}"
        );
        assert_eq!(
            b.counts(),
            Counts {
                free: 1,
                claimed: 1,
                starting: 0,
                waiting: 0
            }
        );
    }
}
