//! One queue for all of an engine's work, decoded with continuous batching: every submitted
//! prompt waits in one queue (in token order, so that prompts sharing a prefix follow each
//! other and reuse it), up to `batch_rows` rows decode together with one forward pass per
//! step, and the slot of a row that finishes takes the next waiting prompt before the next
//! step. Submissions of later stages join the steps of an earlier stage's call (a summary
//! beside the translation of another article), and rows still decoding when a call has its
//! own results stay in the queue for the next call. While a step has fewer rows than the
//! engine's draft room (`DRAFT_STEP_ROWS` by default), the spare rows check draft tokens
//! (`draft`): a row may keep several tokens from one pass.
//!
//! A row's result equals its batch-1 result bit for bit, whatever rows it shares steps with,
//! whenever it joins and whatever drafts it checks: the quantized projections (`qweight`)
//! and norms compute each row the same way at any row count, and attention runs per row with
//! the shapes of a lone row. Checked by `tests/llm_batching.rs` and on the sample run's
//! prompts (`scripts/bench.sh`).

use std::collections::BTreeMap;
use std::time::Instant;

use super::draft;
use super::kv_cache::KvCache;
use super::sampler::{self, Sampler};
use super::{
    BatchTimings, Finish, Generation, LlmEngine, Prepared, StoredGeneration, Ticket, STORE_KIND,
};
use crate::engine::quant::qweight::with_values;
use crate::error::{Error, Result};

/// Rows a step fills with draft tokens while its sequences leave room: a step of a few rows
/// costs little more than one, since it reads the same weights (`examples/decode_matmuls`
/// on an AVX-512 Zen 5: 26.7 ms for 1 row, 36.5 for 5, 41.1 for 8, 66.5 for 16).
pub(super) const DRAFT_STEP_ROWS: usize = 8;
/// Draft tokens one row checks in a step at most (8 rows of up to 4 was as fast as 8 of 8
/// and 16 of 8 on the sample run, alternately, 3 runs each).
const DRAFT_TOKENS: usize = 4;

/// The engine's queue: prompts waiting, the batch decoding, and every open submission.
#[derive(Default)]
pub(super) struct Queue {
    /// Prompts not yet decoding, in token order (submission order among equal prompts).
    waiting: Vec<Prepared>,
    batch: Option<Batch>,
    submissions: BTreeMap<Ticket, Submission>,
    next_ticket: usize,
    /// Time by task (summarize, brief): a step with rows of several submissions of one task
    /// counts once, where their submissions' own timings would each count it.
    task_timings: BTreeMap<&'static str, BatchTimings>,
}

/// The rows decoding and their KV cache, one slot each.
struct Batch {
    cache: KvCache,
    free: Vec<usize>,
    running: Vec<Running>,
}

/// One submission's prompts and what it has got so far.
struct Submission {
    prompts: Vec<(Vec<u32>, usize)>,
    results: Vec<Option<Result<Generation>>>,
    /// Results already given to the collecting call's `on_done`.
    reported: Vec<bool>,
    timings: BatchTimings,
    /// Why it cannot complete: a batch it had rows in failed.
    failed: Option<String>,
}

/// The submission's prompts, results in request order, and its rows' time.
pub(super) type Collected = (
    Vec<(Vec<u32>, usize)>,
    Vec<Result<Generation>>,
    BatchTimings,
);

impl Queue {
    /// Opens a submission of `prompts`; its rows are added with `push` or `settle`.
    pub(super) fn open(&mut self, prompts: Vec<(Vec<u32>, usize)>) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let n = prompts.len();
        self.submissions.insert(
            ticket,
            Submission {
                prompts,
                results: (0..n).map(|_| None).collect(),
                reported: vec![false; n],
                timings: BatchTimings::default(),
                failed: None,
            },
        );
        ticket
    }

    /// A result known without decoding (from the work store, or a prompt that cannot run).
    pub(super) fn settle(&mut self, ticket: Ticket, index: usize, result: Result<Generation>) {
        if let Some(s) = self.submissions.get_mut(&ticket) {
            s.results[index] = Some(result);
        }
    }

    /// Queues a prompt to decode, after every waiting prompt that sorts before or equal to it.
    pub(super) fn push(&mut self, p: Prepared) {
        if let Some(s) = self.submissions.get_mut(&p.ticket) {
            s.timings.batches = 1;
        }
        self.task_timings.entry(p.task).or_default().batches = 1;
        let at = self.waiting.partition_point(|w| w.ids <= p.ids);
        self.waiting.insert(at, p);
    }

    pub(super) fn cancel(&mut self, ticket: Ticket) {
        self.submissions.remove(&ticket);
        self.waiting.retain(|p| p.ticket != ticket);
        if let Some(batch) = &mut self.batch {
            let (gone, kept): (Vec<Running>, Vec<Running>) = batch
                .running
                .drain(..)
                .partition(|r| r.prepared.ticket == ticket);
            batch.free.extend(gone.iter().map(|r| r.slot));
            batch.running = kept;
        }
    }

    fn is_complete(&self, ticket: Ticket) -> bool {
        self.submissions
            .get(&ticket)
            .is_none_or(|s| s.failed.is_some() || s.results.iter().all(Option::is_some))
    }

    /// Calls `on_done` for each result of `ticket` not yet reported.
    fn report(&mut self, ticket: Ticket, on_done: &mut dyn FnMut(usize)) {
        if let Some(s) = self.submissions.get_mut(&ticket) {
            for (i, r) in s.results.iter().enumerate() {
                if r.is_some() && !s.reported[i] {
                    s.reported[i] = true;
                    on_done(i);
                }
            }
        }
    }

    /// A failed step leaves no row it can trust: every open submission fails with `why`.
    fn fail_all(&mut self, why: &str) {
        self.waiting.clear();
        self.batch = None;
        for s in self.submissions.values_mut() {
            if s.results.iter().any(Option::is_none) {
                s.failed = Some(why.to_string());
            }
        }
    }
}

impl LlmEngine {
    /// The time of every row of `task` since it was last taken (prefill, and each decoding
    /// step with one of its rows once), for a stage whose submissions overlap.
    pub fn take_task_timings(&mut self, task: &str) -> BatchTimings {
        self.queue.task_timings.remove(task).unwrap_or_default()
    }

    /// Decodes until every prompt of `ticket` has its result, and hands the submission back.
    pub(super) fn run_until(
        &mut self,
        ticket: Ticket,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<Collected> {
        if !self.queue.submissions.contains_key(&ticket) {
            return Err(Error::model(
                &self.name,
                "that submission was collected or cancelled already",
            ));
        }
        self.queue.report(ticket, on_done);
        if let Err(e) = self.drive(ticket, on_done) {
            // The prefix cache may hold part of a failed prefill.
            self.cached.clear();
            self.prefix_cache = KvCache::new(self.model.shape().n_layers);
            self.queue.fail_all(&e.in_words());
            self.queue.submissions.remove(&ticket);
            return Err(e);
        }
        let s = self
            .queue
            .submissions
            .remove(&ticket)
            .expect("the submission is open");
        if let Some(why) = s.failed {
            return Err(Error::model(
                &self.name,
                format!("a batch these prompts decoded in failed: {why}"),
            ));
        }
        let results = s
            .results
            .into_iter()
            .map(|r| r.expect("a complete submission has every result"))
            .collect();
        Ok((s.prompts, results, s.timings))
    }

    fn drive(&mut self, ticket: Ticket, on_done: &mut dyn FnMut(usize)) -> Result<()> {
        loop {
            if self.queue.is_complete(ticket) {
                return Ok(());
            }
            self.admit(ticket, on_done)?;
            if self.queue.is_complete(ticket) {
                return Ok(());
            }
            if self
                .queue
                .batch
                .as_ref()
                .is_none_or(|b| b.running.is_empty())
            {
                if self.queue.waiting.is_empty() {
                    return Err(Error::model(
                        &self.name,
                        "prompts are missing from the queue",
                    ));
                }
                continue;
            }
            self.step(ticket, on_done)?;
        }
    }

    /// Each free slot takes the next waiting prompt, whose first token comes from its
    /// prefill, so that it joins the very next step.
    fn admit(&mut self, ticket: Ticket, on_done: &mut dyn FnMut(usize)) -> Result<()> {
        while let Some(need) = self.queue.waiting.first().map(|p| p.ids.len() + p.budget) {
            if !self.make_room(need)? {
                break;
            }
            let p = self.queue.waiting.remove(0);
            let (p_ticket, p_task) = (p.ticket, p.task);
            let started = Instant::now();
            let (logits, reused) = self.prefill(&p.ids)?;
            let batch = self.queue.batch.as_mut().expect("make_room made a batch");
            let slot = batch.free.pop().expect("make_room left a free slot");
            batch.cache.fill_slot(slot, &self.prefix_cache)?;
            let d = p.sampling;
            let mut joined = vec![Running {
                slot,
                sampler: Sampler::new(d.temperature, d.top_p, d.seed),
                logits,
                draft: Vec::new(),
                reused,
                generated: Vec::new(),
                logprobs: Vec::new(),
                entropies: Vec::new(),
                prepared: p,
            }];
            self.take_tokens(&mut joined, ticket, on_done)?;
            let (own, task) = (p_ticket, p_task);
            let batch = self.queue.batch.as_mut().expect("the batch is there");
            batch.running.append(&mut joined);
            let elapsed = started.elapsed();
            if let Some(s) = self.queue.submissions.get_mut(&own) {
                s.timings.prefill += elapsed;
            }
            self.queue.task_timings.entry(task).or_default().prefill += elapsed;
        }
        Ok(())
    }

    /// Whether a free slot of at least `need` positions is there for the next waiting
    /// prompt, making or regrowing the batch cache when that fits the KV budget (slots are
    /// sized for the longest prompt and budget waiting or decoding, so one long prompt under
    /// a tight budget leaves fewer slots for all). A cache is regrown only for rows that
    /// could not join otherwise; the rows decoding keep their keys and values.
    fn make_room(&mut self, need: usize) -> Result<bool> {
        let queue = &self.queue;
        let (capacity, free, slots, running) = match &queue.batch {
            Some(b) => (
                b.cache.capacity(),
                b.free.len(),
                b.free.len() + b.running.len(),
                b.running.len(),
            ),
            None => (0, 0, 0, 0),
        };
        if running >= self.batch_rows {
            return Ok(false);
        }
        if capacity >= need && free > 0 {
            return Ok(true);
        }
        // sized for what waits and runs now, so that slots made long for one long prompt
        // become more, shorter ones once it has finished
        let longest = queue
            .waiting
            .iter()
            .map(|p| p.ids.len() + p.budget)
            .chain(queue.batch.iter().flat_map(|b| {
                b.running
                    .iter()
                    .map(|r| r.prepared.ids.len() + r.prepared.budget)
            }))
            .max()
            .unwrap_or(need);
        let needed = longest.max(need);
        let wanted = self.slots_for(needed);
        if wanted <= running || (capacity >= need && wanted <= slots) {
            // full: the prompt waits for a row to finish
            return Ok(false);
        }
        // Every slot the budget allows, each as long as the budget then allows, so that the
        // cache is rarely made again. Its per-layer tensors (over 32 MiB at the manifests'
        // budgets, so mapped fresh) are taken from the kernel as rows first write them: an
        // unused slot costs no memory, where a fresh cache per call had every page zeroed and
        // faulted in again (2% of the sample run).
        let new_capacity = (self.kv_budget_bytes / (wanted * self.kv_bytes_per_token()).max(1))
            .clamp(needed, self.context_length().max(needed));
        let shape = self.model.shape();
        let mut cache = KvCache::batch(
            shape.n_layers,
            (wanted, shape.n_kv_heads, new_capacity, shape.head_dim),
            self.model.device(),
        )?;
        let mut rows = self
            .queue
            .batch
            .take()
            .map(|b| (b.cache, b.running))
            .unwrap_or_else(|| (KvCache::new(0), Vec::new()));
        for (new_slot, row) in rows.1.iter_mut().enumerate() {
            cache.copy_slot(new_slot, &rows.0, row.slot)?;
            row.slot = new_slot;
        }
        let running = rows.1;
        self.queue.batch = Some(Batch {
            cache,
            free: (running.len()..wanted).rev().collect(),
            running,
        });
        Ok(true)
    }

    /// How many rows of `capacity` positions decode together: at most `batch_rows`, and no
    /// more than the KV budget holds (one at least: `fit` refused any prompt that alone is
    /// over it).
    fn slots_for(&self, capacity: usize) -> usize {
        let per_slot = capacity * self.kv_bytes_per_token();
        (self.kv_budget_bytes / per_slot.max(1))
            .min(self.batch_rows)
            .max(1)
    }

    /// One forward pass for every running row, then each takes its next token. Rows also
    /// check draft tokens (`draft`) in the same pass while the step has fewer rows than the
    /// engine's draft room: a row's draft tokens go to consecutive positions of its slot,
    /// and each one the model itself chooses is kept, with the token after it, so a row may
    /// advance several tokens in one step. Every kept token is the one decoding without
    /// drafts chooses, from bit-identical logits (each draft row is computed as a row of its
    /// own, attending over the positions before it, as in a later step).
    fn step(&mut self, ticket: Ticket, on_done: &mut dyn FnMut(usize)) -> Result<()> {
        let started = Instant::now();
        let draft_rows = self.draft_step_rows;
        let batch = self.queue.batch.as_mut().expect("a batch with rows");
        let mut spare = draft_rows.saturating_sub(batch.running.len());
        let mut live = Vec::with_capacity(batch.running.len().max(draft_rows));
        let mut next_ids = Vec::with_capacity(live.capacity());
        for row in batch.running.iter_mut() {
            let generated = row.generated.len();
            let position = row.prepared.ids.len() + generated - 1;
            // the last kept token is never a draft: a row stops at its budget
            let room = row.prepared.budget.saturating_sub(generated + 1);
            row.draft = draft::Sequence {
                prompt: &row.prepared.ids,
                generated: &row.generated,
            }
            .draft(spare.min(room).min(DRAFT_TOKENS));
            spare -= row.draft.len();
            live.push((row.slot, position));
            next_ids.push(*row.generated.last().expect("a running row has a token"));
            for (j, &t) in row.draft.iter().enumerate() {
                live.push((row.slot, position + 1 + j));
                next_ids.push(t);
            }
        }
        batch.cache.set_live(&live);
        let positions: Vec<u32> = live.iter().map(|&(_, p)| p as u32).collect();
        let out = self
            .model
            .decode_step(&next_ids, &positions, &mut batch.cache)?;
        let vocab = out.dim(1)?;
        with_values(&out, |logits| {
            let mut first = 0;
            for row in batch.running.iter_mut() {
                let n = 1 + row.draft.len();
                row.logits.clear();
                row.logits
                    .extend_from_slice(&logits[first * vocab..(first + n) * vocab]);
                first += n;
            }
        })?;
        let mut rows = std::mem::take(&mut batch.running);
        let owners: Vec<(Ticket, &'static str, usize)> = rows
            .iter()
            .map(|r| (r.prepared.ticket, r.prepared.task, r.draft.len()))
            .collect();
        let sequences = rows.len();
        let accepted = self.take_tokens(&mut rows, ticket, on_done)?;
        // each submission and task counts the step once, and its own rows' drafts
        let mut tickets: BTreeMap<Ticket, (usize, usize)> = BTreeMap::new();
        let mut tasks: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
        for (&(t, task, drafted), kept) in owners.iter().zip(accepted) {
            for counts in [
                tickets.entry(t).or_default(),
                tasks.entry(task).or_default(),
            ] {
                counts.0 += drafted;
                counts.1 += kept;
            }
        }
        let batch = self.queue.batch.as_mut().expect("the batch is there");
        // rejected drafts wrote past what the rows kept; their next step writes over them
        for row in &rows {
            let filled = row.prepared.ids.len() + row.generated.len() - 1;
            batch.cache.keep(row.slot, filled);
        }
        batch.running = rows;
        let elapsed = started.elapsed();
        let count = |t: &mut BatchTimings, (drafted, kept): (usize, usize)| {
            t.decode += elapsed;
            t.steps += 1;
            t.largest_batch = t.largest_batch.max(sequences);
            t.drafted += drafted;
            t.accepted += kept;
        };
        for (t, counts) in tickets {
            if let Some(s) = self.queue.submissions.get_mut(&t) {
                count(&mut s.timings, counts);
            }
        }
        for (task, counts) in tasks {
            count(self.queue.task_timings.entry(task).or_default(), counts);
        }
        Ok(())
    }

    /// Each of `rows` takes its next token from its logits, and the tokens after it that its
    /// drafts guessed right; a row that ends is finished (kept in the store, its result
    /// settled, its slot freed; reported to `on_done` when it is `ticket`'s) and leaves
    /// `rows`. Returns how many draft tokens each row kept, in the order of `rows`.
    fn take_tokens(
        &mut self,
        rows: &mut Vec<Running>,
        ticket: Ticket,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<Vec<usize>> {
        let stops = (!self.ignore_stops).then_some(self.stop_ids.as_slice());
        let chains = choose_tokens(rows, stops);
        let accepted = chains.iter().map(|c| c.len() - 1).collect();
        let mut still = Vec::with_capacity(rows.len());
        for (mut row, chain) in rows.drain(..).zip(chains) {
            let finish = chain
                .into_iter()
                .find_map(|choice| self.record_token(&mut row, choice));
            match finish {
                Some(finish) => {
                    let generation = self.finish_row(&row, finish)?;
                    let (t, index) = (row.prepared.ticket, row.prepared.index);
                    self.queue.settle(t, index, Ok(generation));
                    if let Some(batch) = &mut self.queue.batch {
                        batch.free.push(row.slot);
                    }
                    if t == ticket {
                        self.queue.report(ticket, on_done);
                    }
                }
                None => still.push(row),
            }
        }
        *rows = still;
        Ok(accepted)
    }

    /// Records `row`'s next token; returns how the row ended if it did (a stop token, which
    /// is not recorded, or its budget).
    fn record_token(&self, row: &mut Running, choice: Choice) -> Option<Finish> {
        if !self.ignore_stops && self.stop_ids.contains(&choice.token) {
            return Some(Finish::Stop);
        }
        row.generated.push(choice.token);
        row.logprobs.push(choice.logprob);
        row.entropies.push(choice.entropy);
        (row.generated.len() >= row.prepared.budget).then_some(Finish::Budget)
    }

    /// A finished row's generation, kept in the work store the moment it is done: a run
    /// killed later keeps it.
    fn finish_row(&self, row: &Running, finish: Finish) -> Result<Generation> {
        let text = self.decode(&row.generated)?;
        if let (Some(store), Some(key)) = (&self.store, &row.prepared.key) {
            let stored = StoredGeneration {
                text: text.clone(),
                finish,
                ids: row.generated.clone(),
                logprobs: row.logprobs.clone(),
                entropies: row.entropies.clone(),
            };
            store.put(STORE_KIND, row.prepared.task, key, &stored);
        }
        Ok(Generation {
            text,
            from_store: false,
            prompt_tokens: row.prepared.ids.len() - row.reused,
            reused_tokens: row.reused,
            new_tokens: row.generated.len(),
            finish,
            ids: row.generated.clone(),
            logprobs: row.logprobs.clone(),
            entropies: row.entropies.clone(),
        })
    }
}
/// A row's next token, drawn from its logits, and the decoder's confidence in it.
#[derive(Clone, Copy)]
struct Choice {
    token: u32,
    logprob: f32,
    entropy: f32,
}

/// Every row's next tokens: the one its first logits choose, then, while the chosen token
/// is the row's next draft token, the one the logits after that draft choose, up to a stop
/// token or the row's budget. A row's sampler draws once per chosen token, as decoding
/// without drafts does.
///
/// Each choice is a few passes over the vocabulary (152k logits), and with many rows this
/// serial work left the other core idle between steps, so rows are spread over candle's
/// threads; each row's choices depend on its own logits and sampler only, so the result is
/// the same as one row after another.
fn choose_tokens(rows: &mut [Running], stops: Option<&[u32]>) -> Vec<Vec<Choice>> {
    let choose = |row: &mut Running| {
        let vocab = row.logits.len() / (1 + row.draft.len());
        let mut chain = Vec::with_capacity(1 + row.draft.len());
        for (j, logits) in row.logits.chunks_exact(vocab).enumerate() {
            let token = row.sampler.sample(logits);
            let (logprob, entropy) = sampler::token_statistics(logits, token);
            chain.push(Choice {
                token,
                logprob,
                entropy,
            });
            // a stop ends the row; the draft never reaches past the budget (`step`)
            let stop = stops.is_some_and(|s| s.contains(&token));
            if stop || row.draft.get(j) != Some(&token) {
                break;
            }
        }
        chain
    };
    if rows.len() < 2 {
        return rows.iter_mut().map(choose).collect();
    }
    let cells: Vec<std::sync::Mutex<(&mut Running, Vec<Choice>)>> = rows
        .iter_mut()
        .map(|row| std::sync::Mutex::new((row, Vec::new())))
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(cells.len(), |range| {
        for i in range {
            let mut cell = cells[i].lock().expect("no sampler panicked");
            let chain = choose(cell.0);
            cell.1 = chain;
        }
    });
    cells
        .into_iter()
        .map(|cell| cell.into_inner().expect("no sampler panicked").1)
        .collect()
}

/// A prompt decoding in a slot of the batch cache.
struct Running {
    prepared: Prepared,
    slot: usize,
    sampler: Sampler,
    /// The logits its next token is drawn from, then those after each draft token.
    logits: Vec<f32>,
    /// Tokens guessed to follow its next one, checked in the coming step.
    draft: Vec<u32>,
    /// Prompt tokens whose keys and values came from the prefix cache.
    reused: usize,
    generated: Vec<u32>,
    logprobs: Vec<f32>,
    entropies: Vec<f32>,
}
