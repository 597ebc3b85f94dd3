//! Retry and Catch around a state's attempts, and the result processing
//! (ResultSelector, ResultPath, OutputPath) after the last one.

use super::*;

impl Engine<'_, '_> {
    /// Retry and Catch around one of Task, Parallel, Map. The attempt
    /// returns the state's result, before ResultSelector and ResultPath.
    pub(super) fn with_retries(
        &mut self,
        state: &State,
        common: &Common,
        input: Value,
        now: &mut i64,
        mut attempt: impl FnMut(&mut Self, &Value, &mut i64, u64) -> Result<Value, Stop>,
    ) -> Result<(Value, Option<String>), Stop> {
        let mut retries_used = vec![0u64; common.retry.len()];
        let mut attempt_no = 0u64;
        loop {
            let outcome = attempt(self, &input, now, attempt_no).and_then(|result| {
                let ctx = self.context(&state.name, *now, attempt_no, None, None);
                let output = self.finish_result(state, common, &input, result, &ctx);
                self.recycle(ctx);
                output
            });
            let failure = match outcome {
                Ok(output) => return Ok((output, state.next.clone())),
                Err(Stop::Failed(f)) => f,
                Err(other) => return Err(other),
            };
            if let Some(ix) = common
                .retry
                .iter()
                .position(|r| errors::matches(&r.error_equals, &failure.error))
            {
                let retrier = &common.retry[ix];
                if retries_used[ix] < retrier.max_attempts {
                    let delay_ms = self.backoff_ms(retrier, retries_used[ix]);
                    retries_used[ix] += 1;
                    attempt_no += 1;
                    self.event(*now, "RetryScheduled", json!({"name": state.name, "error": failure.error, "attempt": attempt_no, "delayMs": delay_ms}));
                    self.advance(now, *now + delay_ms as i64)?;
                    continue;
                }
            }
            if let Some(catcher) = common
                .catch
                .iter()
                .find(|c| errors::matches(&c.error_equals, &failure.error))
            {
                return self.caught(state, catcher, input, failure, *now);
            }
            return Err(Stop::Failed(failure));
        }
    }

    /// ResultSelector, ResultPath and OutputPath over a state's result.
    pub(super) fn finish_result(
        &mut self,
        state: &State,
        common: &Common,
        input: &Value,
        result: Value,
        ctx: &Value,
    ) -> Result<Value, Stop> {
        let selected = match &common.result_selector {
            Some(t) => t.render(&result, ctx, &mut self.rng).map_err(|(e, m)| {
                Failure::new(e, format!("state '{}', ResultSelector: {m}", state.name))
            })?,
            None => result,
        };
        let placed = place_result(&common.result_path, input.clone(), selected, &state.name)?;
        self.state_output(state, &placed, ctx)
    }

    pub(super) fn backoff_ms(&mut self, r: &Retrier, retries_so_far: u64) -> u64 {
        let mut delay =
            r.interval_seconds as f64 * r.backoff_rate.powi(retries_so_far.min(1000) as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max as f64);
        }
        let mut ms = (delay * 1000.0).min(1.0e15) as u64;
        if r.full_jitter && ms > 0 {
            ms = self.rng.random_u64() % (ms + 1);
        }
        ms
    }

    pub(super) fn caught(
        &mut self,
        state: &State,
        catcher: &Catcher,
        input: Value,
        failure: Failure,
        now: i64,
    ) -> Result<(Value, Option<String>), Stop> {
        self.event(
            now,
            "CatchTaken",
            json!({"name": state.name, "error": failure.error, "next": catcher.next}),
        );
        let error_output = json!({"Error": failure.error, "Cause": failure.cause});
        let output = match &catcher.result_path {
            None => input,
            Some(p) => {
                let mut target = input;
                p.place(&mut target, error_output).map_err(|e| {
                    runtime(format!("state '{}': Catch ResultPath: {e}", state.name))
                })?;
                target
            }
        };
        Ok((output, Some(catcher.next.clone())))
    }
}
