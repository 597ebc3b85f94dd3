//! Parallel states: every branch on its own timeline; when one fails,
//! the others stop at that time.

use super::*;

impl Engine<'_, '_> {
    /// Runs a branch or iteration started beside one that failed at
    /// `failed_at`: states entered by then run, nothing after.
    pub(super) fn cancelled_run(
        &mut self,
        machine: &StateMachine,
        input: Value,
        now: &mut i64,
        scope: &str,
        failed_at: i64,
    ) -> Result<Value, Stop> {
        let outer = self.cancel_after;
        self.cancel_after = Some(outer.map_or(failed_at, |c| c.min(failed_at)));
        let result = self.run_machine(machine, input, now, Some(scope));
        self.cancel_after = outer;
        match result {
            // A token it waits on is abandoned with it.
            Err(Stop::Suspended(_)) => Err(Stop::Cancelled),
            other => other,
        }
    }

    pub(super) fn parallel_attempt(
        &mut self,
        state: &State,
        p: &Parallel,
        input: &Value,
        now: &mut i64,
    ) -> Result<Value, Stop> {
        let ctx = self.context(&state.name, *now, 0, None, None);
        let effective = self.state_input(state, input, &ctx)?;
        let branch_input = self.parameters(state, &p.common.parameters, effective, &ctx)?;
        self.recycle(ctx);
        self.event(*now, "ParallelStateStarted", Value::Null);
        let started = *now;
        let mut finished = started;
        let mut outputs = Vec::with_capacity(p.branches.len());
        // Branches all start together: after one fails, the others still
        // run up to the failure's time (their side effects happen on AWS
        // too), then stop.
        let mut failed: Option<(Failure, usize, i64)> = None;
        for (i, branch) in p.branches.iter().enumerate() {
            let mut t = started;
            let scope = format!("{}/Branches[{i}]", state.name);
            let result = match &failed {
                Some((_, _, failed_at)) => {
                    self.cancelled_run(branch, branch_input.clone(), &mut t, &scope, *failed_at)
                }
                None => self.run_machine(branch, branch_input.clone(), &mut t, Some(&scope)),
            };
            match result {
                Ok(out) if failed.is_none() => outputs.push(out),
                Ok(_) | Err(Stop::Cancelled) => {}
                Err(Stop::Failed(f)) if failed.is_none() => {
                    failed = Some((f, i, t.max(started)));
                }
                Err(Stop::Failed(_)) | Err(Stop::Suspended(_)) if failed.is_some() => {}
                Err(other) => {
                    *now = t;
                    return Err(other);
                }
            }
            finished = finished.max(t);
        }
        if let Some((f, branch, failed_at)) = failed {
            *now = failed_at;
            self.event(
                *now,
                "ParallelStateFailed",
                json!({"error": f.error, "cause": f.cause, "branch": branch}),
            );
            return Err(Stop::Failed(f));
        }
        *now = finished;
        self.event(*now, "ParallelStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }
}
