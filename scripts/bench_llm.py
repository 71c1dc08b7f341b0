"""llama.cpp (through llama-cpp-python) on the LLM prompts a crossbrief run recorded.

Same GGUF file, same prompt token ids, same calls (each `generate_batch` call of the run is
one group), and exactly as many new tokens per prompt as crossbrief generated, so that both
engines do the same work. Greedy. Prints JSON figures on stdout.

  --mode single    one sequence at a time; a prompt reuses the cached prefix it shares with
                   the previous one (as crossbrief does)
  --mode parallel  up to --batch-rows sequences decoded together in one llama_batch per
                   step, grouped as crossbrief groups them (longest first)
  --mode sweep     decode throughput at fixed length, as llama-batched-bench measures it:
                   for each N in --sweep, N prompts of the largest call (repeated if fewer)
                   each decode exactly --new-tokens tokens together

Run by scripts/bench.sh inside a throwaway virtualenv holding llama-cpp-python.
"""

import argparse
import ctypes
import json
import os
import sys
import time
from collections import OrderedDict

import llama_cpp as L
import numpy as np


def load_prompts(path):
    calls = OrderedDict()
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                calls.setdefault(r["call"], []).append(r)
    return calls


class Engine:
    def __init__(self, gguf, n_ctx, n_seq, threads):
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(gguf.encode(), mp)
        if not self.model:
            sys.exit(f"llama.cpp could not load {gguf}")
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 512
        cp.n_ubatch = 512
        cp.n_seq_max = n_seq
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.kv_unified = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            sys.exit("llama.cpp could not create a context")
        self.mem = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(512, 0, n_seq)

    def decode(self, items):
        """items: (token, pos, seq, want_logits); at most 512. Returns the rows' argmaxes."""
        b = self.batch
        for i, (tok, pos, seq, want) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        b.n_tokens = len(items)
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            sys.exit(f"llama_decode failed ({rc})")
        out = []
        for i, (_, _, _, want) in enumerate(items):
            if want:
                ptr = L.llama_get_logits_ith(self.ctx, i)
                row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
                out.append(int(row.argmax()))
        return out

    def prefill(self, ids, start, seq):
        """Feeds ids[start:] of one sequence in chunks; returns the last position's argmax."""
        first = None
        for c in range(start, len(ids), 512):
            chunk = ids[c : c + 512]
            last = c + len(chunk) == len(ids)
            items = [(t, c + j, seq, last and j == len(chunk) - 1) for j, t in enumerate(chunk)]
            r = self.decode(items)
            if last:
                first = r[0]
        return first


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def run_single(eng, calls):
    prefill_s = decode_s = 0.0
    prompt_tokens = reused = generated = 0
    agree = longest = identical = 0
    cached = []
    for rows in calls.values():
        for r in sorted(rows, key=lambda r: r["prompt_ids"]):
            ids, want = r["prompt_ids"], len(r["generated_ids"])
            shared = min(common_prefix(cached, ids), len(ids) - 1)
            L.llama_memory_seq_rm(eng.mem, 0, shared, -1)
            t = time.perf_counter()
            tok = eng.prefill(ids, shared, 0)
            prefill_s += time.perf_counter() - t
            prompt_tokens += len(ids) - shared
            reused += shared
            cached = list(ids)
            out = []
            t = time.perf_counter()
            pos = len(ids)
            while True:
                out.append(tok)
                if len(out) >= want:
                    break
                tok = eng.decode([(tok, pos, 0, True)])[0]
                pos += 1
            decode_s += time.perf_counter() - t
            cached += out[:-1]
            generated += want
            ref = r["generated_ids"]
            agree += common_prefix(out, ref)
            longest += max(len(out), len(ref))
            identical += out == ref
    return figures(prefill_s, decode_s, prompt_tokens, reused, generated, agree, longest, identical, 1)


def run_parallel(eng, calls, batch_rows):
    prefill_s = decode_s = 0.0
    prompt_tokens = reused = generated = 0
    agree = longest = identical = 0
    largest = 0
    for rows in calls.values():
        ordered = sorted(rows, key=lambda r: -(len(r["prompt_ids"]) + r["max_new_tokens"]))
        for g in range(0, len(ordered), batch_rows):
            group = ordered[g : g + batch_rows]
            largest = max(largest, len(group))
            L.llama_memory_clear(eng.mem, True)
            # Prefill: each row in its own sequence, sharing the prefix of the row before
            # it in token order (as crossbrief's prefix cache does).
            order = sorted(range(len(group)), key=lambda i: group[i]["prompt_ids"])
            first = [None] * len(group)
            prev = None
            t = time.perf_counter()
            for i in order:
                ids = group[i]["prompt_ids"]
                shared = 0
                if prev is not None:
                    shared = min(common_prefix(group[prev]["prompt_ids"], ids), len(ids) - 1)
                    if shared:
                        L.llama_memory_seq_cp(eng.mem, prev, i, 0, shared)
                first[i] = eng.prefill(ids, shared, i)
                prompt_tokens += len(ids) - shared
                reused += shared
                prev = i
            prefill_s += time.perf_counter() - t
            # Decode: one token of every live row per llama_decode call.
            want = [len(r["generated_ids"]) for r in group]
            outs = [[tok] for tok in first]
            t = time.perf_counter()
            while True:
                live = [i for i in range(len(group)) if len(outs[i]) < want[i]]
                if not live:
                    break
                items = [
                    (outs[i][-1], len(group[i]["prompt_ids"]) + len(outs[i]) - 1, i, True)
                    for i in live
                ]
                for i, tok in zip(live, eng.decode(items)):
                    outs[i].append(tok)
            decode_s += time.perf_counter() - t
            for r, out in zip(group, outs):
                out = out[: len(r["generated_ids"])]
                generated += len(out)
                ref = r["generated_ids"]
                agree += common_prefix(out, ref)
                longest += max(len(out), len(ref))
                identical += out == ref
    return figures(prefill_s, decode_s, prompt_tokens, reused, generated, agree, longest, identical, largest)


def run_sweep(eng, calls, sizes, new_tokens):
    largest = max(calls.values(), key=len)
    points = []
    for n in sizes:
        group = [largest[i % len(largest)] for i in range(n)]
        L.llama_memory_clear(eng.mem, True)
        # Prefill each distinct prompt once, sharing the prefix of the one before it; repeats
        # copy their sequence.
        first = [None] * n
        for i, r in enumerate(group):
            if i >= len(largest):
                L.llama_memory_seq_cp(eng.mem, i % len(largest), i, 0, -1)
                first[i] = first[i % len(largest)]
                continue
            shared = 0
            if i > 0:
                shared = min(common_prefix(group[i - 1]["prompt_ids"], r["prompt_ids"]), len(r["prompt_ids"]) - 1)
                if shared:
                    L.llama_memory_seq_cp(eng.mem, i - 1, i, 0, shared)
            first[i] = eng.prefill(r["prompt_ids"], shared, i)
        outs = [[tok] for tok in first]
        t = time.perf_counter()
        for _ in range(new_tokens - 1):
            items = [(outs[i][-1], len(r["prompt_ids"]) + len(outs[i]) - 1, i, True) for i, r in enumerate(group)]
            for i, tok in enumerate(eng.decode(items)):
                outs[i].append(tok)
        decode_s = time.perf_counter() - t
        # As crossbrief counts it: the first new token comes from the prefill.
        points.append({"rows": n, "new_tokens": new_tokens, "decode_s": decode_s,
                       "decode_tokens_per_s": n * new_tokens / decode_s})
    return points


def figures(prefill_s, decode_s, prompt_tokens, reused, generated, agree, longest, identical, largest):
    return {
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "prompt_tokens": prompt_tokens,
        "reused_prompt_tokens": reused,
        "generated_tokens": generated,
        "prefill_tokens_per_s": prompt_tokens / prefill_s if prefill_s else 0.0,
        "decode_tokens_per_s": generated / decode_s if decode_s else 0.0,
        "largest_batch": largest,
        # Against crossbrief's recorded tokens: common prefix over the longer output.
        "agreement_with_crossbrief": agree / longest if longest else 1.0,
        "identical_prompts": int(identical),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--mode", choices=["single", "parallel", "sweep"], required=True)
    ap.add_argument("--sweep", default="1,8,16,32", help="batch sizes of --mode sweep")
    ap.add_argument("--new-tokens", type=int, default=64, help="new tokens per row in --mode sweep")
    ap.add_argument("--batch-rows", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    calls = load_prompts(args.prompts)
    rows = [r for rs in calls.values() for r in rs]
    if args.mode == "sweep":
        sizes = [int(n) for n in args.sweep.split(",")]
        largest = max(calls.values(), key=len)
        longest = max(len(r["prompt_ids"]) for r in largest)
        eng = Engine(args.gguf, max(sizes) * (longest + args.new_tokens) + 16, max(sizes), args.threads)
        print(json.dumps({"engine": "llama.cpp via llama-cpp-python " + L.__version__,
                          "sweep": run_sweep(eng, calls, sizes, args.new_tokens)}, indent=2))
        return
    if args.mode == "single":
        need = max(len(r["prompt_ids"]) + len(r["generated_ids"]) for r in rows) + 16
        eng = Engine(args.gguf, need, 1, args.threads)
        result = run_single(eng, calls)
    else:
        # Unified cache: every sequence of the largest group, prompts and answers.
        need = 16
        for rs in calls.values():
            ordered = sorted(rs, key=lambda r: -(len(r["prompt_ids"]) + r["max_new_tokens"]))
            for g in range(0, len(ordered), args.batch_rows):
                group = ordered[g : g + args.batch_rows]
                need = max(need, sum(len(r["prompt_ids"]) + len(r["generated_ids"]) for r in group) + 16)
        eng = Engine(args.gguf, need, min(args.batch_rows, len(rows)), args.threads)
        result = run_parallel(eng, calls, args.batch_rows)
    result.update(
        {
            "engine": "llama.cpp via llama-cpp-python " + L.__version__,
            "mode": args.mode,
            "threads": args.threads,
            "system_info": L.llama_print_system_info().decode(errors="replace").strip(),
        }
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
