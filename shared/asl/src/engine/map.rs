//! Map states (inline and distributed): item readers, selectors, batches,
//! MaxConcurrency slots and tolerated failures.

use super::*;

impl Engine<'_, '_> {
    pub(super) fn map_attempt(
        &mut self,
        state: &State,
        m: &MapState,
        input: &Value,
        now: &mut i64,
    ) -> Result<Value, Stop> {
        let ctx = self.context(&state.name, *now, 0, None, None);
        let effective = self.state_input(state, input, &ctx)?;
        let items: Vec<Value> = match &m.item_reader {
            Some(reader) => {
                let params = match &reader.parameters {
                    Some(t) => t
                        .render(&effective, &ctx, &mut self.rng)
                        .map_err(|(e, msg)| {
                            Failure::new(
                                e,
                                format!("state '{}', ItemReader.Parameters: {msg}", state.name),
                            )
                        })?,
                    None => json!({}),
                };
                super::items::read(&mut *self.host, reader, &params).map_err(|f| {
                    Failure::new(f.error, format!("state '{}': {}", state.name, f.cause))
                })?
            }
            None => match m.items_path.select(&effective, &ctx) {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(runtime(format!(
                        "state '{}': ItemsPath '{}' must select an array, got {}",
                        state.name,
                        m.items_path.text(),
                        type_name(&other)
                    )))
                }
                None => {
                    return Err(runtime(format!(
                        "state '{}': ItemsPath '{}' matches nothing in the input",
                        state.name,
                        m.items_path.text()
                    )))
                }
            },
        };
        let items = match &m.item_batcher {
            Some(b) => self.batch(state, b, items, &effective, &ctx)?,
            None => items,
        };
        let max_concurrency = self.number(
            &m.max_concurrency,
            &effective,
            &ctx,
            &state.name,
            "MaxConcurrencyPath",
        )? as usize;
        let tolerated_count = match &m.tolerated_failure_count {
            Some(n) => Some(self.number(
                n,
                &effective,
                &ctx,
                &state.name,
                "ToleratedFailureCountPath",
            )?),
            None => None,
        };
        let tolerated_pct = match &m.tolerated_failure_percentage {
            Some(n) => Some(self.number(
                n,
                &effective,
                &ctx,
                &state.name,
                "ToleratedFailurePercentagePath",
            )?),
            None => None,
        };
        let tolerant = m.mode == MapMode::Distributed
            && (tolerated_count.is_some() || tolerated_pct.is_some());
        self.recycle(ctx);
        self.event(*now, "MapStateStarted", json!({"length": items.len()}));
        let started = *now;
        // Each slot is free from this time on; an iteration takes the slot
        // that frees first (MaxConcurrency 0: as many slots as items).
        let slots = if max_concurrency == 0 {
            items.len().max(1)
        } else {
            max_concurrency
        };
        let mut slot_free = vec![started; slots.min(items.len().max(1))];
        let mut outputs = Vec::with_capacity(items.len());
        let mut failures = 0usize;
        let mut finished = started;
        // Iterations started beside one that failed (their slot was free
        // by then) still run up to the failure's time, as on AWS; later
        // ones never start.
        let mut failed: Option<(Failure, i64)> = None;
        for (index, item) in items.iter().enumerate() {
            let (slot, &begin) = slot_free
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .expect("at least one slot");
            // Started before the failure: the first batch (one per slot)
            // and any whose slot freed strictly earlier.
            let started_by_then = |at: i64| index < slot_free.len() || begin < at;
            if failed.as_ref().is_some_and(|(_, at)| !started_by_then(*at)) {
                break;
            }
            let item_ctx = self.context(
                &state.name,
                begin,
                0,
                None,
                Some(&MapItem { index, value: item }),
            );
            let iteration_input = match &m.item_selector {
                Some(t) => t
                    .render(&effective, &item_ctx, &mut self.rng)
                    .map_err(|(e, msg)| {
                        Failure::new(e, format!("state '{}', ItemSelector: {msg}", state.name))
                    })?,
                None => item.clone(),
            };
            self.recycle(item_ctx);
            let mut t = begin;
            self.event(
                t,
                "MapIterationStarted",
                json!({"name": state.name, "index": index}),
            );
            let scope = format!("{}/{index}", state.name);
            if let Some((_, failed_at)) = &failed {
                let failed_at = *failed_at;
                match self.cancelled_run(&m.processor, iteration_input, &mut t, &scope, failed_at) {
                    Err(Stop::TimedOut) => return Err(Stop::TimedOut),
                    Err(Stop::Aborted) => return Err(Stop::Aborted),
                    _ => self.event(
                        t.min(failed_at),
                        "MapIterationAborted",
                        json!({"name": state.name, "index": index}),
                    ),
                }
                slot_free[slot] = t;
                continue;
            }
            match self.run_machine(&m.processor, iteration_input, &mut t, Some(&scope)) {
                Ok(out) => {
                    self.event(
                        t,
                        "MapIterationSucceeded",
                        json!({"name": state.name, "index": index}),
                    );
                    outputs.push(out);
                }
                Err(Stop::Failed(f)) => {
                    self.event(t, "MapIterationFailed", json!({"name": state.name, "index": index, "error": f.error, "cause": f.cause}));
                    if !tolerant {
                        failed = Some((f, t));
                        slot_free[slot] = t;
                        continue;
                    }
                    failures += 1;
                    outputs.push(json!({"Error": f.error, "Cause": f.cause}));
                }
                Err(other) => {
                    *now = t;
                    return Err(other);
                }
            }
            slot_free[slot] = t;
            finished = finished.max(t);
        }
        if let Some((f, failed_at)) = failed {
            *now = failed_at;
            self.event(*now, "MapStateFailed", Value::Null);
            return Err(Stop::Failed(f));
        }
        *now = finished;
        if tolerant {
            let total = items.len().max(1);
            let over_count = tolerated_count.is_some_and(|c| failures as u64 > c);
            let over_pct =
                tolerated_pct.is_some_and(|p| (failures as f64) * 100.0 / total as f64 > p as f64);
            if over_count || over_pct {
                self.event(*now, "MapStateFailed", Value::Null);
                return Err(Stop::Failed(Failure::new(
                    errors::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    format!(
                        "state '{}': {failures} of {} iterations failed, more than tolerated",
                        state.name,
                        items.len()
                    ),
                )));
            }
        }
        self.event(*now, "MapStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }

    pub(super) fn batch(
        &mut self,
        state: &State,
        b: &crate::definition::ItemBatcher,
        items: Vec<Value>,
        effective: &Value,
        ctx: &Value,
    ) -> Result<Vec<Value>, Stop> {
        let max_items = match &b.max_items_per_batch {
            Some(n) => {
                self.number(n, effective, ctx, &state.name, "MaxItemsPerBatchPath")? as usize
            }
            None => usize::MAX,
        };
        let max_bytes = match &b.max_input_bytes_per_batch {
            Some(n) => {
                self.number(n, effective, ctx, &state.name, "MaxInputBytesPerBatchPath")? as usize
            }
            None => usize::MAX,
        };
        let batch_input = match &b.batch_input {
            Some(t) => Some(t.render(effective, ctx, &mut self.rng).map_err(|(e, m)| {
                Failure::new(
                    e,
                    format!("state '{}', ItemBatcher.BatchInput: {m}", state.name),
                )
            })?),
            None => None,
        };
        let mut batches = Vec::new();
        let mut current: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        for item in items {
            let size = item.to_string().len();
            if !current.is_empty()
                && (current.len() >= max_items.max(1) || bytes + size > max_bytes)
            {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(item);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        Ok(batches
            .into_iter()
            .map(|items| {
                let mut batch = json!({"Items": items});
                if let Some(bi) = &batch_input {
                    batch["BatchInput"] = bi.clone();
                }
                batch
            })
            .collect())
    }
}
