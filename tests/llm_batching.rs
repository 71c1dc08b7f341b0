//! Batched LLM decoding on a tiny Qwen2 GGUF generated here (random weights, the real file
//! format and the quantized kernels of the real model: Q4K and Q6K matrices): a prompt's
//! greedy tokens are the same alone and in any batch, a prompt that does not fit gets its own
//! error while the others complete, and prefix reuse does not change results.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use crossbrief::config::decoding::Decoding;
use crossbrief::engine::llm::{ChatSettings, LlmEngine};

const VOCAB: usize = 512;
const DIM: usize = 256;
const FFN: usize = 512;
const LAYERS: usize = 2;
const CONTEXT: usize = 160;

/// Deterministic pseudo-random values (a 64-bit LCG), so the checkpoint is the same every run
/// without a seeded-RNG dependency.
struct Lcg(u64);

impl Lcg {
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    fn tensor(&mut self, rows: usize, cols: usize, scale: f32, dtype: GgmlDType) -> QTensor {
        let t =
            Tensor::from_vec(self.values(rows * cols, scale), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    }

    fn vector(&mut self, n: usize, offset: f32, scale: f32) -> QTensor {
        let v: Vec<f32> = self.values(n, scale).iter().map(|x| x + offset).collect();
        QTensor::quantize(
            &Tensor::from_vec(v, n, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    }
}

/// Writes the tiny model as `tiny.gguf`, and the same tensors split in two parts the way
/// `gguf-split` lays them out (all metadata in the first part, `split.*` keys in both).
fn write_model(dir: &Path) {
    let mut rng = Lcg(20261122);
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            rng.tensor(VOCAB, DIM, 1.0, GgmlDType::Q4K),
        ),
        (
            "output.weight".into(),
            rng.tensor(VOCAB, DIM, 0.3, GgmlDType::Q6K),
        ),
        ("output_norm.weight".into(), rng.vector(DIM, 1.0, 0.1)),
    ];
    for i in 0..LAYERS {
        let p = format!("blk.{i}");
        let kv = DIM / 2; // 2 KV heads of 64 for 4 query heads
        let layer = [
            ("attn_norm.weight", rng.vector(DIM, 1.0, 0.1)),
            ("attn_q.weight", rng.tensor(DIM, DIM, 0.2, GgmlDType::Q4K)),
            ("attn_k.weight", rng.tensor(kv, DIM, 0.2, GgmlDType::Q4K)),
            ("attn_v.weight", rng.tensor(kv, DIM, 0.2, GgmlDType::Q6K)),
            ("attn_q.bias", rng.vector(DIM, 0.0, 0.1)),
            ("attn_k.bias", rng.vector(kv, 0.0, 0.1)),
            ("attn_v.bias", rng.vector(kv, 0.0, 0.1)),
            (
                "attn_output.weight",
                rng.tensor(DIM, DIM, 0.2, GgmlDType::Q4K),
            ),
            ("ffn_norm.weight", rng.vector(DIM, 1.0, 0.1)),
            ("ffn_gate.weight", rng.tensor(FFN, DIM, 0.2, GgmlDType::Q4K)),
            ("ffn_up.weight", rng.tensor(FFN, DIM, 0.2, GgmlDType::Q4K)),
            ("ffn_down.weight", rng.tensor(DIM, FFN, 0.2, GgmlDType::Q6K)),
        ];
        tensors.extend(layer.into_iter().map(|(n, t)| (format!("{p}.{n}"), t)));
    }
    // A byte-level vocabulary in name only: ids are all these tests use.
    let mut tokens: Vec<String> = vec!["a".into(), "b".into(), "ab".into()];
    tokens.extend((3..VOCAB - 1).map(|i| format!("t{i}")));
    tokens.push("<|im_end|>".into());
    let mut types = vec![1i32; VOCAB];
    types[VOCAB - 1] = 3;
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("qwen2.block_count", Value::U32(LAYERS as u32)),
        ("qwen2.attention.head_count", Value::U32(4)),
        ("qwen2.attention.head_count_kv", Value::U32(2)),
        ("qwen2.embedding_length", Value::U32(DIM as u32)),
        ("qwen2.context_length", Value::U32(CONTEXT as u32)),
        ("qwen2.rope.freq_base", Value::F32(10000.0)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("a b".into())]),
        ),
    ];
    let mut file = std::fs::File::create(dir.join("tiny.gguf")).unwrap();
    let all_metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let all_tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &all_metadata, &all_tensors).unwrap();

    let (first, second) = all_tensors.split_at(all_tensors.len() / 2);
    let count = Value::U16(2);
    let total = Value::I32(all_tensors.len() as i32);
    for (no, part) in [first, second].into_iter().enumerate() {
        let split_no = Value::U16(no as u16);
        let mut keys: Vec<(&str, &Value)> = if no == 0 {
            all_metadata.clone()
        } else {
            Vec::new()
        };
        keys.extend([
            ("split.no", &split_no),
            ("split.count", &count),
            ("split.tensors.count", &total),
        ]);
        let name = format!("tiny-{:05}-of-00002.gguf", no + 1);
        let mut file = std::fs::File::create(dir.join(name)).unwrap();
        gguf_file::write(&mut file, &keys, part).unwrap();
    }
}

fn split_parts(dir: &Path) -> Vec<PathBuf> {
    // In the wrong order on purpose: the parts say their own order.
    vec![
        dir.join("tiny-00002-of-00002.gguf"),
        dir.join("tiny-00001-of-00002.gguf"),
    ]
}

fn engine_from(paths: &[PathBuf]) -> LlmEngine {
    let settings = ChatSettings {
        chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}".into(),
        stop: vec!["<|im_end|>".into()],
        batch_rows: 8,
        kv_budget_bytes: 64 << 20,
    };
    LlmEngine::from_gguf("tiny-qwen2", paths, settings, &Device::Cpu).unwrap()
}

fn engine(dir: &Path) -> LlmEngine {
    engine_from(&[dir.join("tiny.gguf")])
}

/// The reference the batched engines are held to: one prompt at a time, one token a step
/// (no draft tokens).
fn engine_alone(dir: &Path) -> LlmEngine {
    let mut alone = engine(dir);
    alone.set_batch_rows(1);
    alone.set_draft_step_rows(0);
    alone
}

/// The tiny model with up to 32 rows and KV room for `positions` positions in all.
fn engine_with_kv_room(dir: &Path, positions: usize) -> LlmEngine {
    let settings = ChatSettings {
        chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}".into(),
        stop: vec!["<|im_end|>".into()],
        batch_rows: 32,
        kv_budget_bytes: positions * KV_BYTES_PER_TOKEN,
    };
    LlmEngine::from_gguf(
        "tiny-qwen2",
        &[dir.join("tiny.gguf")],
        settings,
        &Device::Cpu,
    )
    .unwrap()
}

const GREEDY: Decoding = Decoding {
    temperature: 0.0,
    top_p: 1.0,
    seed: 1,
};

/// Prompts of 3–60 tokens, some sharing a prefix, with budgets of 8–40 new tokens.
fn prompts() -> Vec<(Vec<u32>, usize)> {
    let mut rng = Lcg(7);
    let shared: Vec<u32> = (0..12).map(|i| 3 + (i * 37) % 500).collect();
    (0..19)
        .map(|i| {
            let len = 3 + (i * 13) % 58;
            let mut ids: Vec<u32> = rng
                .values(len, 1.0)
                .iter()
                .map(|v| 3 + ((v + 1.0) * 250.0) as u32 % 500)
                .collect();
            if i % 3 == 0 {
                ids.splice(0..0, shared.iter().copied());
            }
            (ids, 8 + (i * 7) % 33)
        })
        .collect()
}

#[test]
fn batched_greedy_tokens_equal_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let prompts = prompts();

    let mut alone = engine_alone(dir.path());
    let (one, t1) = alone
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(t1.largest_batch, 1);

    for rows in [4, 8, 32] {
        let mut batched = engine(dir.path());
        batched.set_batch_rows(rows);
        let (many, t) = batched
            .generate_from_ids(&prompts, GREEDY, &mut |_| {})
            .unwrap();
        assert_eq!(t.largest_batch, rows.min(prompts.len()));
        for (i, (a, b)) in one.iter().zip(&many).enumerate() {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.ids, b.ids, "prompt {i} differs at batch {rows}");
            assert_eq!(a.finish, b.finish);
        }
    }
    // The outputs are not trivial: budgets are reached and tokens vary.
    let first = one[0].as_ref().unwrap();
    assert_eq!(first.new_tokens, prompts[0].1);
    let distinct: std::collections::BTreeSet<u32> = first.ids.iter().copied().collect();
    assert!(distinct.len() > 2, "degenerate output {:?}", first.ids);
}

/// Continuous batching: a finished row's slot takes the next waiting prompt at the next step.
/// With 2 slots and budgets 5, 30 and 10 (decoded past stop tokens, so the lengths are
/// exact), the third prompt runs beside the second instead of after it; and every row's tokens
/// are those it decodes alone.
#[test]
fn a_finished_row_is_refilled_at_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    // First tokens 3, 4, 5: the queue takes them in this order.
    let prompts: Vec<(Vec<u32>, usize)> = [(3, 5), (4, 30), (5, 10)]
        .iter()
        .map(|&(first, budget)| ((first..first + 9).collect(), budget))
        .collect();
    let mut alone = engine_alone(dir.path());
    alone.set_ignore_stops(true);
    let (one, _) = alone
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    let mut two = engine(dir.path());
    two.set_ignore_stops(true);
    two.set_batch_rows(2);
    // one token a step, so the steps count tokens
    two.set_draft_step_rows(0);
    let mut order = Vec::new();
    let (many, t) = two
        .generate_from_ids(&prompts, GREEDY, &mut |i| order.push(i))
        .unwrap();
    for (i, (a, b)) in one.iter().zip(&many).enumerate() {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(a.ids, b.ids, "prompt {i}");
        assert_eq!(b.new_tokens, prompts[i].1);
    }
    // One continuous batch of two rows; the 10-token prompt finished before the 30-token one.
    assert_eq!((t.batches, t.largest_batch), (1, 2));
    assert_eq!(order, vec![0, 2, 1]);
    // The first token of each comes from its prefill: the 30-token row alone needs 29 steps.
    // Batches of two without refill would take 29 + 9 = 38.
    assert_eq!(t.steps, 29, "steps");
}

/// Consensus candidates (one prompt, each row sampling with its own seed) share the prompt's
/// prefill: each after the first reuses all of its keys and values but the last token's. In a
/// mix with other prompts, refilled slots included, every row gives the tokens it gives alone.
#[test]
fn shared_prefix_candidates_decode_as_alone_in_any_mix() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut prompts = prompts();
    let mut sampling = vec![None; prompts.len()];
    let candidate = prompts[4].clone();
    for seed in [11, 12, 13] {
        prompts.push(candidate.clone());
        sampling.push(Some(Decoding {
            temperature: 0.8,
            top_p: 0.95,
            seed,
        }));
    }
    let mut alone = engine_alone(dir.path());
    let (one, _) = alone
        .generate_sampled_from_ids(&prompts, &sampling, GREEDY, &mut |_| {})
        .unwrap();
    for rows in [3, 8] {
        let mut batched = engine(dir.path());
        batched.set_batch_rows(rows);
        let (many, t) = batched
            .generate_sampled_from_ids(&prompts, &sampling, GREEDY, &mut |_| {})
            .unwrap();
        assert_eq!((t.batches, t.largest_batch), (1, rows));
        for (i, (a, b)) in one.iter().zip(&many).enumerate() {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.ids, b.ids, "prompt {i} differs at {rows} rows");
        }
        let candidates = &many[many.len() - 3..];
        let reused: Vec<usize> = candidates
            .iter()
            .map(|c| c.as_ref().unwrap().reused_tokens)
            .collect();
        // The greedy row of the same prompt comes first in the queue: all three reuse it.
        assert!(
            reused.iter().all(|&r| r == candidate.0.len() - 1),
            "{reused:?}"
        );
    }
    // The candidates are not one answer thrice.
    let texts: std::collections::BTreeSet<Vec<u32>> = one[one.len() - 3..]
        .iter()
        .map(|c| c.as_ref().unwrap().ids.clone())
        .collect();
    assert!(texts.len() > 1, "the sampled candidates are identical");
}

/// KV bytes of one token of the tiny model: 2 layers × 2 KV heads × 64 dims × (K, V) × f32.
const KV_BYTES_PER_TOKEN: usize = LAYERS * 2 * (DIM / 4) * 2 * 4;

#[test]
fn batches_stay_within_the_kv_budget_and_a_request_over_it_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut prompts = prompts();
    let mut alone = engine_alone(dir.path());
    let (one, _) = alone
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();

    // Room for 120 tokens of cache: the slots are sized for the longest prompt and budget
    // (91 positions), so one row at a time, and the 140-token request is refused alone.
    let tight_engine = |positions: usize| engine_with_kv_room(dir.path(), positions);
    let longest = prompts.iter().map(|(ids, b)| ids.len() + b).max().unwrap();
    assert_eq!(longest, 91);
    // Room for exactly three such slots: three rows at a time, the same tokens.
    let (three, timings) = tight_engine(3 * longest)
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(timings.largest_batch, 3);
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        assert_eq!(
            a.as_ref().unwrap().ids,
            b.as_ref().unwrap().ids,
            "prompt {i}"
        );
    }
    let mut tight = tight_engine(120);
    prompts.insert(5, (vec![7; 100], 40));
    let (many, timings) = tight
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(timings.largest_batch, 1);
    let error = many[5].as_ref().unwrap_err().to_string();
    assert!(
        error.contains("KV cache") && error.contains("over the budget"),
        "{error}"
    );
    let rest: Vec<_> = many
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, r)| r)
        .collect();
    for (i, (a, b)) in one.iter().zip(rest).enumerate() {
        assert_eq!(
            a.as_ref().unwrap().ids,
            b.as_ref().unwrap().ids,
            "prompt {i}"
        );
    }
}

#[test]
fn a_prompt_too_long_fails_alone_and_the_others_complete() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut llm = engine(dir.path());
    let mut prompts = prompts();
    prompts.insert(2, (vec![5; CONTEXT + 3], 10));
    let mut done = Vec::new();
    let (results, _) = llm
        .generate_from_ids(&prompts, GREEDY, &mut |i| done.push(i))
        .unwrap();
    let error = results[2].as_ref().unwrap_err().to_string();
    assert!(error.contains("leaves no room in the context"), "{error}");
    assert!(results.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
    done.sort();
    assert_eq!(done, (0..prompts.len()).collect::<Vec<_>>());
    // A budget past the context is cut to the room left.
    let (results, _) = llm
        .generate_from_ids(&[(vec![7; CONTEXT - 4], 50)], GREEDY, &mut |_| {})
        .unwrap();
    assert!(results[0].as_ref().unwrap().new_tokens <= 4);
}

#[test]
fn prefix_reuse_gives_the_same_tokens() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut llm = engine(dir.path());
    let prompt = prompts()[3].clone();
    let (first, _) = llm
        .generate_from_ids(std::slice::from_ref(&prompt), GREEDY, &mut |_| {})
        .unwrap();
    let (again, _) = llm
        .generate_from_ids(std::slice::from_ref(&prompt), GREEDY, &mut |_| {})
        .unwrap();
    let (first, again) = (first[0].as_ref().unwrap(), again[0].as_ref().unwrap());
    assert_eq!(first.reused_tokens, 0);
    assert_eq!(again.reused_tokens, prompt.0.len() - 1);
    assert_eq!(first.ids, again.ids);
}

/// A model split in GGUF parts (as the hub ships Qwen2.5-7B) loads as one: the same tokens as
/// the single file, with the untied output matrix of the tiny model in either case.
#[test]
fn a_split_gguf_decodes_as_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut single = engine(dir.path());
    let mut split = engine_from(&split_parts(dir.path()));
    let (a, _) = single
        .generate_from_ids(&prompts(), GREEDY, &mut |_| {})
        .unwrap();
    let (b, _) = split
        .generate_from_ids(&prompts(), GREEDY, &mut |_| {})
        .unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.as_ref().unwrap().ids, b.as_ref().unwrap().ids);
    }
    // A missing part is refused, naming what is wrong.
    let settings = ChatSettings {
        chat_template: String::new(),
        stop: vec![],
        batch_rows: 1,
        kv_budget_bytes: 64 << 20,
    };
    let one_part = [dir.path().join("tiny-00001-of-00002.gguf")];
    let err = LlmEngine::from_gguf("tiny", &one_part, settings, &Device::Cpu)
        .err()
        .expect("one part of two must not load")
        .to_string();
    assert!(err.contains("split in 2 part"), "{err}");
}

/// (reused, computed) under `task` so far.
fn store_counts(store: &crossbrief::store::WorkStore, task: &str) -> (usize, usize) {
    let c = store
        .record()
        .by_task
        .get(task)
        .copied()
        .unwrap_or_default();
    (c.reused, c.computed)
}

#[test]
fn the_work_store_gives_back_each_generation_and_misses_on_any_change() {
    use crossbrief::store::{ModelStore, WorkStore};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let store = Arc::new(WorkStore::open(&dir.path().join("store")).unwrap());
    let mut stored = engine(dir.path());
    stored.set_store(Some(ModelStore::new(store.clone(), "tiny".into())));
    let prompts: Vec<(Vec<u32>, usize)> = prompts().into_iter().take(6).collect();

    let (fresh, _) = stored
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(store_counts(&store, "generate"), (0, 6));
    let (again, timings) = stored
        .generate_from_ids(&prompts, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(store_counts(&store, "generate"), (6, 6));
    assert_eq!(timings.steps, 0, "a stored generation was decoded again");
    for (a, b) in fresh.iter().zip(&again) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(b.from_store && !a.from_store);
        assert_eq!((&a.text, &a.ids, a.finish), (&b.text, &b.ids, b.finish));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.logprobs), bits(&b.logprobs));
        assert_eq!(bits(&a.entropies), bits(&b.entropies));
    }

    // Anything a result depends on is in the key: a budget, a temperature, a seed.
    let one = vec![(prompts[0].0.clone(), prompts[0].1 + 1)];
    stored.generate_from_ids(&one, GREEDY, &mut |_| {}).unwrap();
    assert_eq!(store_counts(&store, "generate"), (6, 7), "another budget");
    let sampled = |seed| Decoding {
        temperature: 0.8,
        top_p: 0.95,
        seed,
    };
    let first = vec![prompts[0].clone()];
    for (decoding, expected) in [
        (sampled(1), (6, 8)),
        (sampled(2), (6, 9)),
        (sampled(1), (7, 9)),
    ] {
        stored
            .generate_from_ids(&first, decoding, &mut |_| {})
            .unwrap();
        assert_eq!(store_counts(&store, "generate"), expected, "{decoding:?}");
    }
    // A throughput benchmark's decoding past stop tokens is neither stored nor taken.
    stored.set_ignore_stops(true);
    stored
        .generate_from_ids(&first, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(store_counts(&store, "generate"), (7, 9));
}

/// One queue across calls: prompts submitted without decoding (a later stage's, like an
/// article's summary) decode in the steps of the next call beside its own rows and go on
/// decoding after it returns; longer prompts joining them regrow the cache without changing
/// them; and every row gives the tokens it gives alone.
#[test]
fn submitted_prompts_decode_beside_later_calls_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let prompt = |first: u32, len: u32, budget: usize| ((first..first + len).collect(), budget);
    let submitted: Vec<(Vec<u32>, usize)> = (0..4).map(|i| prompt(10 + 40 * i, 10, 30)).collect();
    let short = vec![prompt(300, 5, 3)];
    // 50 + 40 positions, where the first batch was sized for 10 + 30
    let long: Vec<(Vec<u32>, usize)> = (0..3).map(|i| prompt(200 + 7 * i, 50, 40)).collect();

    let mut alone = engine_alone(dir.path());
    alone.set_ignore_stops(true);
    let mut expected = Vec::new();
    for set in [&submitted, &short, &long] {
        let (r, _) = alone.generate_from_ids(set, GREEDY, &mut |_| {}).unwrap();
        expected.extend(r.into_iter().map(|g| g.unwrap().ids));
    }

    // KV room for 2,048 positions: 32 slots of 64 at first, then the long prompts' 90
    // positions leave room for 22 slots of 93, so the cache is made again around 4 running
    // rows; one token a step (so the steps count tokens), then with drafts in up to 16 rows
    for draft_rows in [0, 16] {
        let mut queued = engine_with_kv_room(dir.path(), 2048);
        queued.set_ignore_stops(true);
        queued.set_draft_step_rows(draft_rows);
        let ticket = queued.submit_ids(&submitted, GREEDY);
        let (short_out, ts) = queued
            .generate_from_ids(&short, GREEDY, &mut |_| {})
            .unwrap();
        assert_eq!(
            ts.largest_batch,
            1 + submitted.len(),
            "the submitted rows joined"
        );
        let (long_out, tl) = queued
            .generate_from_ids(&long, GREEDY, &mut |_| {})
            .unwrap();
        assert_eq!(
            tl.largest_batch,
            long.len() + submitted.len(),
            "the submitted rows still decoding beside the long ones"
        );
        let mut reported = Vec::new();
        let (submitted_out, t) = queued.collect(ticket, &mut |i| reported.push(i)).unwrap();
        assert_eq!(reported.len(), submitted.len(), "each reported once");
        if draft_rows > 0 {
            // drafts written and rejected beside the regrown rows: the cache keeps what counts
            assert!(
                tl.drafted > tl.accepted,
                "{} of {}",
                tl.accepted,
                tl.drafted
            );
        }
        if draft_rows == 0 {
            // its 29 steps after the prefill, all taken in the two calls: none left to collect
            assert_eq!(t.steps, 29);
        }
        let got: Vec<Vec<u32>> = submitted_out
            .into_iter()
            .chain(short_out)
            .chain(long_out)
            .map(|g| g.unwrap().ids)
            .collect();
        assert_eq!(got, expected, "drafts in up to {draft_rows} rows");
        // a collected submission is gone
        assert!(queued.collect(ticket, &mut |_| {}).is_err());
    }
}

/// A cancelled submission leaves the queue: the next call decodes only its own rows, and the
/// cancelled one cannot be collected.
#[test]
fn a_cancelled_submission_never_decodes() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let all = prompts();
    let (first, second) = all.split_at(5);
    let mut engine = engine(dir.path());
    engine.set_batch_rows(32);
    let ticket = engine.submit_ids(first, GREEDY);
    engine.cancel(ticket);
    let (_, t) = engine
        .generate_from_ids(second, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(t.largest_batch, second.len());
    assert!(engine.collect(ticket, &mut |_| {}).is_err());
}

/// Slots made long for long prompts become more, shorter ones for the short prompts of a
/// later call: room for 320 positions holds 2 rows of 150, then 8 of 40, each with its lone
/// tokens.
#[test]
fn the_cache_gives_short_prompts_more_slots_after_long_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let prompt = |first: u32, len: u32, budget: usize| ((first..first + len).collect(), budget);
    let long: Vec<(Vec<u32>, usize)> = (0..2).map(|i| prompt(10 + 9 * i, 120, 30)).collect();
    let short: Vec<(Vec<u32>, usize)> = (0..8).map(|i| prompt(200 + 11 * i, 10, 30)).collect();
    let mut engine = engine_with_kv_room(dir.path(), 320);
    engine.set_ignore_stops(true);
    let (_, t_long) = engine
        .generate_from_ids(&long, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(t_long.largest_batch, 2);
    let (short_out, t_short) = engine
        .generate_from_ids(&short, GREEDY, &mut |_| {})
        .unwrap();
    assert_eq!(
        t_short.largest_batch, 8,
        "the short prompts decode together"
    );
    let mut alone = engine_alone(dir.path());
    alone.set_ignore_stops(true);
    let (expected, _) = alone
        .generate_from_ids(&short, GREEDY, &mut |_| {})
        .unwrap();
    for (a, b) in expected.iter().zip(&short_out) {
        assert_eq!(a.as_ref().unwrap().ids, b.as_ref().unwrap().ids);
    }
}

/// Draft tokens (prompt lookup, checked in a step's spare rows) change nothing: every row's
/// tokens, log-probabilities and entropies are bit-identical to decoding one token a step,
/// greedy and sampled, with rows refilled, at any row count and draft room; a row never
/// passes its budget; and drafts were both kept and rejected, so both paths ran.
#[test]
fn draft_tokens_change_no_token_logprob_or_entropy() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path());
    let mut prompts = prompts();
    // prompts the tiny model answers with repeated tokens (39 × 15, 454 × 8, "146 354 100"
    // thrice), which the lookup guesses from the tokens already generated
    for token in [6, 16, 17] {
        prompts.push((vec![token; 12], 30));
    }
    let mut sampling = vec![None; prompts.len()];
    for (i, seed) in [(1, 5), (4, 6), (19, 7), (20, 8), (21, 9)] {
        prompts.push(prompts[i].clone());
        sampling.push(Some(Decoding {
            temperature: 0.8,
            top_p: 0.95,
            seed,
        }));
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for ignore_stops in [false, true] {
        let mut alone = engine_alone(dir.path());
        alone.set_ignore_stops(ignore_stops);
        let (expected, t) = alone
            .generate_sampled_from_ids(&prompts, &sampling, GREEDY, &mut |_| {})
            .unwrap();
        assert_eq!((t.drafted, t.accepted), (0, 0));
        for (rows, draft_rows) in [(1, 8), (3, 8), (4, 16)] {
            let mut drafting = engine(dir.path());
            drafting.set_ignore_stops(ignore_stops);
            drafting.set_batch_rows(rows);
            drafting.set_draft_step_rows(draft_rows);
            let (got, t) = drafting
                .generate_sampled_from_ids(&prompts, &sampling, GREEDY, &mut |_| {})
                .unwrap();
            let case =
                format!("{rows} rows, {draft_rows} with drafts, stops ignored {ignore_stops}");
            for (i, (a, b)) in expected.iter().zip(&got).enumerate() {
                let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
                assert_eq!(a.ids, b.ids, "prompt {i}, {case}");
                assert_eq!(a.finish, b.finish, "prompt {i}, {case}");
                assert_eq!(bits(&a.logprobs), bits(&b.logprobs), "prompt {i}, {case}");
                assert_eq!(bits(&a.entropies), bits(&b.entropies), "prompt {i}, {case}");
                if ignore_stops {
                    assert_eq!(b.new_tokens, prompts[i].1, "prompt {i}, {case}");
                }
            }
            assert!(
                t.accepted > 0 && t.accepted < t.drafted,
                "{case}: {} of {} drafts kept",
                t.accepted,
                t.drafted
            );
        }
        // The sampled rows alone keep drafts too, drawing once per kept token as a step does
        // (held to their own lone run: without their greedy siblings first, their prompts
        // are prefilled whole rather than reused).
        let sampled: Vec<usize> = (0..prompts.len())
            .filter(|&i| sampling[i].is_some())
            .collect();
        let only: Vec<(Vec<u32>, usize)> = sampled.iter().map(|&i| prompts[i].clone()).collect();
        let only_sampling: Vec<Option<Decoding>> = sampled.iter().map(|&i| sampling[i]).collect();
        let (lone, _) = alone
            .generate_sampled_from_ids(&only, &only_sampling, GREEDY, &mut |_| {})
            .unwrap();
        let mut drafting = engine(dir.path());
        drafting.set_ignore_stops(ignore_stops);
        drafting.set_batch_rows(2);
        let (got, t) = drafting
            .generate_sampled_from_ids(&only, &only_sampling, GREEDY, &mut |_| {})
            .unwrap();
        for (i, (a, b)) in lone.iter().zip(&got).enumerate() {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.ids, b.ids, "sampled prompt {i}");
            assert_eq!(bits(&a.logprobs), bits(&b.logprobs), "sampled prompt {i}");
        }
        assert!(t.accepted > 0, "no sampled row kept a draft");
    }
}
