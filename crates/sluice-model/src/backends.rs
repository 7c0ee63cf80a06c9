//! A backend's life: added (or re-added while it drains, R5), set to a
//! weight or to maintenance, removed — which starts its drain (R1).

use std::collections::BTreeSet;

use crate::limits::{validate_backend_addr, validate_weight};
use crate::{
    AfterDrain, Applied, Backend, BackendStatus, Drain, DrainCause, DrainId, ModelError, State,
    UnixMillis,
};

impl State {
    /// [`Command::AddBackend`](crate::Command::AddBackend): adds a backend
    /// (ramping from `at`, R10), changes an active one's weight, or makes a
    /// draining one come back after its drain (R5).
    pub(crate) fn add_backend(
        &mut self,
        group: &str,
        addr: &str,
        weight: u8,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        validate_backend_addr(addr)?;
        validate_weight(u32::from(weight))?;
        let g = self.live_group_mut(group)?;
        let Some(b) = g.backends.get_mut(addr) else {
            g.backends.insert(
                addr.to_string(),
                Backend {
                    addr: addr.to_string(),
                    weight,
                    status: BackendStatus::Active,
                    health: Default::default(),
                    ramp: None,
                    maintenance: false,
                },
            );
            g.begin_ramp(addr, at);
            return Ok(Applied::Done);
        };
        match b.status {
            BackendStatus::Active => {
                let woke = b.weight == 0 && weight > 0;
                b.weight = weight;
                if woke || weight == 0 {
                    g.begin_ramp(addr, at);
                }
                Ok(Applied::Done)
            }
            BackendStatus::Draining { drain } => {
                let Some(d) = self.drains.get_mut(&drain) else {
                    return Err(ModelError::DrainNotFound { drain });
                };
                d.after = AfterDrain::Reactivate { weight };
                Ok(Applied::Draining {
                    drain,
                    deadline: d.deadline,
                    started: false,
                })
            }
        }
    }

    /// [`Command::RemoveBackend`](crate::Command::RemoveBackend).
    pub(crate) fn remove_backend(
        &mut self,
        group: &str,
        addr: &str,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        self.group_mut(group)?;
        self.start_removal(group, addr, at)
    }

    /// Starts the drain of `addr` in `group` removed at `at` (R1), or makes
    /// a drain in progress end in removal.
    pub(crate) fn start_removal(
        &mut self,
        group: &str,
        addr: &str,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        let id = DrainId(self.next_drain);
        let g = self.group_mut(group)?;
        let policy = g.drain;
        let b = g.backend_mut(addr)?;
        if let BackendStatus::Draining { drain } = b.status {
            let Some(d) = self.drains.get_mut(&drain) else {
                return Err(ModelError::DrainNotFound { drain });
            };
            d.after = AfterDrain::Remove;
            return Ok(Applied::Draining {
                drain,
                deadline: d.deadline,
                started: false,
            });
        }
        b.status = BackendStatus::Draining { drain: id };
        let deadline = policy.deadline_from(at);
        self.next_drain += 1;
        self.drains.insert(
            id,
            Drain {
                id,
                group: group.to_string(),
                backend: addr.to_string(),
                cause: DrainCause::Removed,
                started_at: at,
                deadline,
                finished: BTreeSet::new(),
                after: AfterDrain::Remove,
            },
        );
        Ok(Applied::Draining {
            drain: id,
            deadline,
            started: true,
        })
    }

    /// [`Command::SetBackend`](crate::Command::SetBackend): changes a
    /// backend's weight or maintenance state.
    pub(crate) fn set_backend(
        &mut self,
        group: &str,
        addr: &str,
        weight: Option<u8>,
        maintenance: Option<bool>,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        if weight.is_none() && maintenance.is_none() {
            return Err(ModelError::NothingToUpdate {
                fields: "weight, maintenance".into(),
            });
        }
        if let Some(w) = weight {
            validate_weight(u32::from(w))?;
        }
        let g = self.live_group_mut(group)?;
        let b = g.backend_mut(addr)?;
        if b.status != BackendStatus::Active {
            return Err(ModelError::BackendDraining {
                group: group.to_string(),
                backend: addr.to_string(),
            });
        }
        let took_work = b.weight > 0 && !b.maintenance;
        if let Some(w) = weight {
            b.weight = w;
        }
        if let Some(m) = maintenance {
            b.maintenance = m;
        }
        let takes_work = b.weight > 0 && !b.maintenance;
        if took_work != takes_work || (weight.is_some() && !takes_work) {
            g.begin_ramp(addr, at);
        }
        Ok(Applied::Done)
    }
}
