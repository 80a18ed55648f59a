//! The inference slots of one loaded GGUF model and the decode loop that serves them (continuous batching).
//!
//! At load, a dedicated thread creates one long-lived llama.cpp context holding `parallel` sequences over a
//! unified KV cache of the whole context (so one request may use all of it). Requests ([`Job`]s) wait in a
//! bounded FIFO queue; between steps the loop admits the queue's head while a slot is free and the tokens
//! every active request may still need (prompt + `max_tokens`) fit the context, clearing only the new
//! request's sequence. Each step decodes one batch: the next token of every generating sequence, then prompt
//! chunks of the admitted ones up to `n_batch` tokens, so a long prompt never stalls the others for more than
//! a step. Each sequence keeps its own sampler and [`TextStream`]; its text pieces go to its request through
//! a channel. A request whose receiver is gone, or that set its cancel flag, is dropped at the next step and
//! its sequence cleared. Dropping [`Slots`] (the model is unloaded) stops the loop and frees the context.
//!
//! With a prompt-prefix cache (`prefix_cache.rs`), a request arrives with its plan: a newly admitted sequence
//! first restores the verified state it found ([`Seq::fed`], where prefill resumes, is then the restored
//! length), and a sequence whose prompt was just read copies its state for the saver after its first token
//! went out.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use parking_lot::{Condvar, Mutex};

use super::prefix_cache::{PrefixCache, PrefixPlan};
use super::{FinishReason, GenerateParams, Generation, sampler};
use crate::models::generate::{SlotConfig, SlotStats, TextStream};

/// Most tokens one decode step takes (prefill chunks included).
const MAX_BATCH: u32 = 512;

/// What the decode loop sends a request.
#[derive(Debug)]
pub(super) enum Event {
    /// Text safe to show, and the tokens generated so far.
    Piece(String, usize),
    /// The first `n` prompt tokens were restored from the prompt-prefix cache.
    Cached(usize),
    /// The end: the whole generation, or why it failed.
    Done(Result<Generation, String>),
}

/// One request for the decode loop.
pub(super) struct Job {
    pub(super) tokens: Vec<LlamaToken>,
    pub(super) params: GenerateParams,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) queued_at: Instant,
    /// What the prompt-prefix cache does for this request (`None`: nothing).
    pub(super) prefix: Option<PrefixPlan>,
}

impl Job {
    /// Tokens of the context this request may occupy at most.
    pub(super) fn reserve(&self) -> usize {
        self.tokens.len() + self.params.max_tokens as usize
    }
}

/// Why a request was not taken.
#[derive(Debug)]
pub(super) enum Refused {
    /// Every slot is busy and `queue_size` requests already wait.
    Busy { queue_size: u32 },
    /// The decode loop has stopped (it failed); the model must be loaded again.
    Stopped,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    closed: bool,
    stats: SlotStats,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The slots of one model: the queue and the decode thread that owns the context.
pub(super) struct Slots {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    n_ctx: u32,
    queue_size: u32,
    prefix: Option<Arc<PrefixCache>>,
}

impl Slots {
    /// Starts the decode thread, which creates the context of `n_ctx` tokens and `config.parallel` sequences;
    /// returns once the context exists (or with llama.cpp's reason why it could not be created). With
    /// `config.prefix`, the slots use the prompt-prefix cache, fingerprinted with `file_fingerprint` (the
    /// model file's `blake3:` fingerprint) and the context's layout.
    pub(super) fn start(
        model: Arc<LlamaModel>,
        n_ctx: u32,
        config: &SlotConfig,
        file_fingerprint: Option<&str>,
    ) -> Result<Self, String> {
        let parallel = config.parallel.max(1);
        let prefix = match (&config.prefix, file_fingerprint) {
            (Some(prefix), Some(file)) => {
                PrefixCache::start(&model, prefix, file, &context_params(n_ctx, parallel)).map(Arc::new)
            }
            _ => None,
        };
        let loop_prefix = prefix.clone();
        let stats = SlotStats { parallel, n_ctx, queue_size: config.queue_size, ..SlotStats::default() };
        let shared =
            Arc::new(Shared { queue: Mutex::new(Queue { stats, ..Queue::default() }), wake: Condvar::new() });
        let (ready_tx, ready_rx) = mpsc::channel();
        let loop_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("inferno-decode".into())
            .spawn(move || {
                decode_thread(&model, n_ctx, parallel, loop_prefix.as_deref(), &loop_shared, &ready_tx)
            })
            .map_err(|e| format!("cannot start the decode thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {
                Ok(Self { shared, thread: Some(thread), n_ctx, queue_size: config.queue_size, prefix })
            }
            Ok(Err(reason)) => {
                let _ = thread.join();
                Err(reason)
            }
            Err(_) => {
                let _ = thread.join();
                Err("the decode thread ended while creating the context".into())
            }
        }
    }

    /// Tokens of the shared context.
    pub(super) fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// The prompt-prefix cache's plan for a prompt of `tokens` that may occupy `reserve` cells (looked up and
    /// verified on the caller's thread); `None` without a prefix cache or for a prompt too short for it.
    pub(super) fn prefix_plan(&self, tokens: &[LlamaToken], reserve: usize) -> Option<PrefixPlan> {
        self.prefix.as_ref()?.plan(tokens, reserve)
    }

    /// Waits until the states saved so far are in the prefix cache's store.
    pub(super) fn wait_for_prefix_saves(&self) {
        if let Some(prefix) = &self.prefix {
            prefix.wait_for_saves();
        }
    }

    /// Queues `job`, or refuses it when `queue_size` requests already wait.
    pub(super) fn submit(&self, job: Job) -> Result<(), Refused> {
        let mut queue = self.shared.queue.lock();
        if queue.closed {
            return Err(Refused::Stopped);
        }
        queue.waiting.retain(|j| !j.cancel.load(Ordering::Relaxed));
        let free = queue.stats.parallel.saturating_sub(queue.stats.busy) as usize;
        if queue.waiting.len() >= self.queue_size as usize + free {
            queue.stats.rejected += 1;
            return Err(Refused::Busy { queue_size: self.queue_size });
        }
        queue.waiting.push_back(job);
        queue.stats.queued = queue.waiting.len() as u32;
        drop(queue);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// What the slots are doing and have done.
    pub(super) fn stats(&self) -> SlotStats {
        self.shared.queue.lock().stats
    }

    /// Wakes the loop (a request was cancelled while waiting, so the queue may shrink).
    pub(super) fn nudge(&self) {
        self.shared.wake.notify_one();
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An admitted request in its sequence.
struct Seq {
    id: i32,
    job: Job,
    /// Prompt tokens already in the sequence's KV cells; prefill resumes here.
    fed: usize,
    /// Position of the next token added to the sequence.
    pos: i32,
    /// The sampled token to feed next (generating), `None` while the prompt is being read.
    next: Option<LlamaToken>,
    sampler: LlamaSampler,
    stream: TextStream,
    completion_tokens: usize,
    /// Where this sequence's logits are in the batch just decoded.
    logits_at: Option<i32>,
    /// Prompt tokens restored from the prompt-prefix cache.
    cached: usize,
}

/// How a sequence ended.
enum End {
    Finished(FinishReason),
    /// The request went away: nobody to tell.
    Gone,
    Failed(String),
}

/// The parameters of the slots' context: `parallel` sequences sharing one unified KV cache of `n_ctx` cells.
fn context_params(n_ctx: u32, parallel: u32) -> LlamaContextParams {
    let n_batch = n_ctx.min(MAX_BATCH);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(parallel)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

fn decode_thread(
    model: &LlamaModel,
    n_ctx: u32,
    parallel: u32,
    prefix: Option<&PrefixCache>,
    shared: &Shared,
    ready: &mpsc::Sender<Result<(), String>>,
) {
    let params = context_params(n_ctx, parallel);
    let n_batch = params.n_batch();
    let backend = match super::backend() {
        Ok(backend) => backend,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot create the slots' context: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    // However the loop ends (closed, or a panic), waiting requests are dropped (their callers get an error)
    // and no new one is taken.
    let _closing = CloseOnExit(shared);
    let mut lp = Loop {
        model,
        shared,
        batch: LlamaBatch::new(n_batch as usize, 1),
        n_batch: n_batch as usize,
        n_ctx: n_ctx as usize,
        seqs: (0..parallel).map(|_| None).collect(),
        bytes: Vec::new(),
        counts: Counts::default(),
        prefix,
    };
    while lp.admit(&mut ctx) {
        lp.restore_admitted(&mut ctx);
        let started = Instant::now();
        lp.step(&mut ctx);
        let mut queue = shared.queue.lock();
        queue.stats.decode_seconds += started.elapsed().as_secs_f64();
        lp.counts.flush(&mut queue.stats);
    }
}

struct CloseOnExit<'a>(&'a Shared);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock();
        queue.closed = true;
        queue.waiting.clear();
        queue.stats.queued = 0;
    }
}

struct Loop<'m> {
    model: &'m LlamaModel,
    shared: &'m Shared,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    n_ctx: usize,
    seqs: Vec<Option<Seq>>,
    bytes: Vec<u8>,
    counts: Counts,
    prefix: Option<&'m PrefixCache>,
}

/// Tokens decoded since the figures were last updated; they are added before a request is told it ended,
/// so a caller that sees its answer sees its tokens counted.
#[derive(Default)]
struct Counts {
    generated: u64,
    prompt: u64,
}

impl Counts {
    fn flush(&mut self, stats: &mut SlotStats) {
        stats.generated_tokens += std::mem::take(&mut self.generated);
        stats.prompt_tokens += std::mem::take(&mut self.prompt);
    }
}

impl Loop<'_> {
    /// Drops cancelled requests, admits queued ones while a slot is free and their tokens fit, and waits
    /// while nothing is active. False when the slots are closing.
    fn admit(&mut self, ctx: &mut LlamaContext<'_>) -> bool {
        let shared = self.shared;
        let mut queue = shared.queue.lock();
        for slot in &mut self.seqs {
            if slot.as_ref().is_some_and(|s| s.job.cancel.load(Ordering::Relaxed)) {
                free(ctx, slot, &mut queue.stats);
            }
        }
        loop {
            if queue.closed {
                return false;
            }
            queue.waiting.retain(|j| !j.cancel.load(Ordering::Relaxed));
            let mut reserved: usize = self.seqs.iter().flatten().map(|s| s.job.reserve()).sum();
            while let Some(free) = self.seqs.iter().position(Option::is_none) {
                let Some(head) = queue.waiting.front() else { break };
                if reserved + head.reserve() > self.n_ctx && reserved > 0 {
                    break;
                }
                let job = queue.waiting.pop_front().expect("looked at");
                reserved += job.reserve();
                queue.stats.admitted += 1;
                queue.stats.busy += 1;
                queue.stats.peak_busy = queue.stats.peak_busy.max(queue.stats.busy);
                queue.stats.queued_seconds += job.queued_at.elapsed().as_secs_f64();
                // Only this sequence's cells are cleared; a false return means there was nothing to clear.
                let _ = ctx.clear_kv_cache_seq(Some(free as u32), None, None);
                self.seqs[free] = Some(Seq {
                    id: free as i32,
                    sampler: sampler(&job.params),
                    stream: TextStream::new(&job.params.stop),
                    job,
                    fed: 0,
                    pos: 0,
                    next: None,
                    completion_tokens: 0,
                    logits_at: None,
                    cached: 0,
                });
            }
            queue.stats.queued = queue.waiting.len() as u32;
            if queue.stats.busy > 0 {
                return true;
            }
            shared.wake.wait(&mut queue);
        }
    }

    /// Restores the verified states that newly admitted sequences found in the prompt-prefix cache; a
    /// sequence whose state llama.cpp refuses reads its whole prompt and saves its state after.
    fn restore_admitted(&mut self, ctx: &mut LlamaContext<'_>) {
        let Some(prefix) = self.prefix else { return };
        for seq in self.seqs.iter_mut().flatten() {
            let Some(plan) = seq.job.prefix.as_mut() else { continue };
            let Some(restore) = plan.restore.take() else { continue };
            match prefix.restore(ctx, seq.id, &restore) {
                Some(kept) => {
                    (seq.fed, seq.pos, seq.cached) = (kept, kept as i32, kept);
                    let _ = seq.job.events.send(Event::Cached(kept));
                }
                None => plan.save = true,
            }
        }
    }

    /// One batch: every generating sequence's next token, then prompt chunks.
    fn step(&mut self, ctx: &mut LlamaContext<'_>) {
        self.batch.clear();
        for seq in self.seqs.iter_mut().flatten() {
            seq.logits_at = None;
            if let Some(token) = seq.next {
                seq.logits_at = Some(self.batch.n_tokens());
                self.batch.add(token, seq.pos, &[seq.id], true).expect("one token per sequence fits");
                seq.pos += 1;
            }
        }
        let generating = self.batch.n_tokens() as usize;
        for seq in self.seqs.iter_mut().flatten() {
            let room = self.n_batch - self.batch.n_tokens() as usize;
            if seq.next.is_some() || room == 0 {
                continue;
            }
            let end = seq.job.tokens.len().min(seq.fed + room);
            for i in seq.fed..end {
                let last = i + 1 == seq.job.tokens.len();
                if last {
                    seq.logits_at = Some(self.batch.n_tokens());
                }
                self.batch.add(seq.job.tokens[i], seq.pos, &[seq.id], last).expect("room was counted");
                seq.pos += 1;
            }
            self.counts.prompt += (end - seq.fed) as u64;
            seq.fed = end;
        }
        let batch_tokens = self.batch.n_tokens() as usize;
        let prompt_tokens = batch_tokens - generating;
        let decoding = Instant::now();
        let decoded = ctx.decode(&mut self.batch);
        if let Some(prefix) = self.prefix {
            let share = prompt_tokens as f64 / batch_tokens.max(1) as f64;
            prefix.count_prefill(prompt_tokens, decoding.elapsed().as_secs_f64() * share);
        }
        if let Err(e) = decoded {
            let reason = format!("llama.cpp could not decode the batch: {e}");
            for slot in &mut self.seqs {
                if slot.is_some() {
                    finish(ctx, self.shared, slot, End::Failed(reason.clone()), &mut self.counts);
                }
            }
            return;
        }
        for slot in &mut self.seqs {
            let Some(seq) = slot.as_mut() else { continue };
            let Some(at) = seq.logits_at else { continue };
            let prompt_read = seq.next.is_none();
            let end = if seq.job.params.max_tokens == 0 {
                Some(End::Finished(FinishReason::Length))
            } else {
                let token = seq.sampler.sample(ctx, at);
                seq.sampler.accept(token);
                let before = seq.completion_tokens;
                let end = take(self.model, &mut self.bytes, seq, token);
                self.counts.generated += (seq.completion_tokens - before) as u64;
                end
            };
            // The sequence holds exactly the prompt until its first token is decoded in the next step.
            if let (true, Some(prefix), Some(plan)) = (prompt_read, self.prefix, &seq.job.prefix)
                && plan.save
            {
                prefix.save(ctx, seq.id, &seq.job.tokens, plan);
            }
            if let Some(end) = end {
                finish(ctx, self.shared, slot, end, &mut self.counts);
            }
        }
    }
}

/// Gives `token` to `seq`: its text to the request, and whether the sequence ends here.
fn take(model: &LlamaModel, bytes: &mut Vec<u8>, seq: &mut Seq, token: LlamaToken) -> Option<End> {
    let vocab = model.vocab();
    if vocab.is_eog(token) {
        return Some(End::Finished(FinishReason::Stop));
    }
    seq.completion_tokens += 1;
    bytes.clear();
    vocab.token_to_piece_into(token, bytes, false, None);
    let pushed = seq.stream.push(bytes);
    let stopped = pushed.stopped;
    if !pushed.piece.is_empty() {
        let event = Event::Piece(pushed.piece.to_string(), seq.completion_tokens);
        if seq.job.events.send(event).is_err() || seq.job.cancel.load(Ordering::Relaxed) {
            return Some(End::Gone);
        }
    }
    if stopped {
        return Some(End::Finished(FinishReason::Stop));
    }
    if seq.completion_tokens >= seq.job.params.max_tokens as usize {
        return Some(End::Finished(FinishReason::Length));
    }
    seq.next = Some(token);
    None
}

/// Clears the sequence in `slot`'s KV cells and frees the slot (counted under the queue's lock, so a request
/// that sees its sequence end also sees the slot free).
fn free(ctx: &mut LlamaContext<'_>, slot: &mut Option<Seq>, stats: &mut SlotStats) -> Option<Seq> {
    let seq = slot.take()?;
    let _ = ctx.clear_kv_cache_seq(Some(seq.id as u32), None, None);
    stats.busy = stats.busy.saturating_sub(1);
    Some(seq)
}

/// Ends the sequence in `slot`: frees it, then tells its request how it ended.
fn finish(
    ctx: &mut LlamaContext<'_>,
    shared: &Shared,
    slot: &mut Option<Seq>,
    end: End,
    counts: &mut Counts,
) {
    let Some(mut seq) = ({
        let mut queue = shared.queue.lock();
        counts.flush(&mut queue.stats);
        free(ctx, slot, &mut queue.stats)
    }) else {
        return;
    };
    let done = match end {
        End::Gone => return,
        End::Failed(reason) => Err(reason),
        End::Finished(finish_reason) => {
            let rest = seq.stream.finish();
            if !rest.is_empty() {
                let _ = seq.job.events.send(Event::Piece(rest.to_string(), seq.completion_tokens));
            }
            Ok(Generation {
                text: seq.stream.into_text(),
                prompt_tokens: seq.job.tokens.len(),
                completion_tokens: seq.completion_tokens,
                cached_tokens: seq.cached,
                finish_reason,
            })
        }
    };
    let _ = seq.job.events.send(Event::Done(done));
}
