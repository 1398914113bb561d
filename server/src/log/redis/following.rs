//! Which rooms this node follows (hears on the bus, and hands on to its hub), and for how long it
//! has had no use for each ([`Following`]). A room is of use while something holds a [`Lease`] on
//! it — a join between following the room and taking its place in the hub, a page being rendered —
//! or while it has readers here; only a room of no use for the linger is let go, so a join never
//! finds the room let go under it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// Cheap to clone: the rooms followed on this node.
#[derive(Clone, Default)]
pub(super) struct Following(Arc<Mutex<HashMap<String, Arc<Room>>>>);

/// One room's following.
#[derive(Default)]
pub(super) struct Room {
    /// Following or letting go of the room, one at a time.
    pub(super) serial: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    followed: bool,
    /// When it was last of use (followed, read, had readers, a lease let go).
    used: Option<Instant>,
    leases: usize,
}

/// Keeps a room followed while held (see the module's opening).
pub struct Lease(Option<Arc<Room>>);

impl Lease {
    /// A lease on nothing: a log that follows every room always (one node).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(room) = &self.0 {
            let mut state = room.state();
            state.leases = state.leases.saturating_sub(1);
            state.used = Some(Instant::now());
        }
    }
}

impl Room {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a few fields at once: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn is_followed(&self) -> bool {
        self.state().followed
    }

    /// Marks it not followed (a follow that failed half-way was undone).
    pub(super) fn unfollowed(&self) {
        self.state().followed = false;
    }

    /// Marks it followed (or still followed), and leases it.
    pub(super) fn lease(self: &Arc<Self>) -> Lease {
        let mut state = self.state();
        state.followed = true;
        state.leases += 1;
        state.used = Some(Instant::now());
        Lease(Some(self.clone()))
    }
}

impl Following {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's entry, made if new.
    pub(super) fn room(&self, room: &str) -> Arc<Room> {
        self.map().entry(room.to_owned()).or_default().clone()
    }

    /// Whether `room` is followed here now.
    pub(super) fn follows(&self, room: &str) -> bool {
        self.map().get(room).is_some_and(|room| room.is_followed())
    }

    /// Whether `lock` is still `room`'s entry (not let go and replaced meanwhile).
    pub(super) fn is_current(&self, room: &str, entry: &Arc<Room>) -> bool {
        self.map()
            .get(room)
            .is_some_and(|now| Arc::ptr_eq(now, entry))
    }

    /// The followed rooms of no use for `linger` — no lease held, not being followed now, and not
    /// `in_use` (readers here) — taken out; the others used now if `in_use`.
    pub(super) fn take_unused(
        &self,
        linger: Duration,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut gone = Vec::new();
        self.map().retain(|name, room| {
            let Ok(_serial) = room.serial.try_lock() else {
                return true; // Being followed right now.
            };
            let mut state = room.state();
            if !state.followed {
                return false;
            }
            if state.leases > 0 || in_use(name) {
                state.used = Some(Instant::now());
                return true;
            }
            if state.used.is_some_and(|used| used.elapsed() < linger) {
                return true;
            }
            state.followed = false;
            gone.push(name.clone());
            false
        });
        gone
    }
}
