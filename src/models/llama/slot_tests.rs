//! The slots on the tiny model: concurrent greedy requests decoded in one batch give their solo text, a
//! full queue refuses, and a request that stops early frees its slot before it returns.

use std::ops::ControlFlow;
use std::sync::{Barrier, mpsc};

use super::*;
use crate::models::gguf::tiny::{tiny_llama_with_context, write_tiny_llama};

fn tiny_slots(parallel: u32, queue_size: u32) -> (tempfile::TempDir, GgufModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path).unwrap();
    let slots = SlotConfig { parallel, queue_size, ..SlotConfig::default() };
    let model = GgufModel::load_with(&path, &slots).unwrap();
    (dir, model)
}

#[test]
fn concurrent_greedy_requests_return_their_solo_text() {
    let (_dir, model) = tiny_slots(16, 512);
    assert_eq!(model.n_ctx(), 128, "the tiny model's training context");
    // 16 prompts of 4 tokens (BOS, the space prefix, two characters) and 4 new tokens each: 128 tokens, the
    // whole context, so all 16 fit at once.
    let prompts: Vec<String> = (0..16u8)
        .map(|i| match i {
            0..10 => format!("{}{}", (b'a' + 2 * i) as char, (b'b' + 2 * i) as char),
            _ => format!("{}{}", (b'0' + i - 10) as char, (b'4' + i - 10) as char),
        })
        .collect();
    let params = GenerateParams { max_tokens: 4, ..GenerateParams::default() };
    let solo: Vec<Generation> = prompts.iter().map(|p| model.generate(p, &params).unwrap()).collect();
    assert_eq!(solo[0].text, "cdef");
    assert_eq!(solo[15].text, "0123", "after \"59\"");
    let barrier = Barrier::new(prompts.len());
    let together: Vec<Generation> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let (model, params, barrier) = (&model, &params, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    model.generate(p, params).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, solo);
    let stats = model.slot_stats();
    assert!(stats.peak_busy > 1, "the requests were decoded one at a time: {stats:?}");
    assert_eq!((stats.busy, stats.queued, stats.admitted, stats.rejected), (0, 0, 32, 0));
    assert_eq!(stats.generated_tokens, 32 * 4);
    assert_eq!(stats.prompt_tokens, 32 * 4);
}

#[test]
fn a_full_queue_refuses_and_a_request_that_stops_frees_its_slot() {
    // The tiny model with a 4096-token context: 4000 tokens keep the one slot busy for a while (the decode
    // loop does not wait for its callers, so only a long generation holds a slot).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.gguf");
    tiny_llama_with_context(4096).unwrap().write_path(&path).unwrap();
    let model =
        GgufModel::load_with(&path, &SlotConfig { parallel: 1, queue_size: 0, ..SlotConfig::default() })
            .unwrap();
    let params = GenerateParams { max_tokens: 4000, ..GenerateParams::default() };
    let (started_tx, started_rx) = mpsc::channel();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (model, params) = (&model, &params);
        let first = s.spawn(move || {
            model.generate_with("abc", params, |_| {
                let _ = started_tx.send(());
                let _ = hold_rx.recv();
                ControlFlow::Continue(())
            })
        });
        started_rx.recv().unwrap();
        // The one slot is busy and no request may wait.
        let refused = model.generate("xy", params).unwrap_err();
        assert!(matches!(refused, LlamaError::Busy { queue_size: 0 }), "{refused}");
        drop(hold_tx);
        let first = first.join().unwrap().unwrap();
        assert_eq!((first.completion_tokens, &first.text[..8]), (4000, "defghijk"));
    });
    // A caller that stops after the first piece gets its slot freed before its call returns: the next
    // request is admitted although nothing may wait.
    let stopped = model.generate_with("abc", &params, |_| ControlFlow::Break(())).unwrap();
    assert_eq!((stopped.text.as_str(), stopped.finish_reason), ("d", FinishReason::Stop));
    assert_eq!(model.slot_stats().busy, 0);
    let short = GenerateParams { max_tokens: 8, ..GenerateParams::default() };
    assert_eq!(model.generate("xy", &short).unwrap().text, "zabcdefg");
    let stats = model.slot_stats();
    assert_eq!((stats.rejected, stats.admitted, stats.busy), (1, 3, 0));
}

#[test]
fn a_request_larger_than_the_free_context_waits_for_it() {
    let (_dir, model) = tiny_slots(4, 8);
    // Each needs 5 + 60 = 65 of the 128 tokens, so the second waits until the first is done.
    let params = GenerateParams { max_tokens: 60, ..GenerateParams::default() };
    let solo = model.generate("abc", &params).unwrap();
    let together: Vec<Generation> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| model.generate("abc", &params).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, [solo.clone(), solo]);
    assert_eq!(model.slot_stats().peak_busy, 1, "their tokens never fit the context together");
}
