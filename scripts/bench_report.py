"""Prints scripts/bench.sh's table from the figures it left in a folder (target/bench/llm)."""

import json
import re
import sys
from pathlib import Path

LLM_STAGES = ("translate: llm", "summarize", "brief")


def load(folder, name):
    return json.loads((folder / name).read_text())


def elapsed_and_rss(time_file):
    text = time_file.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return seconds, rss_kb / 1024 / 1024


def rate(n, s):
    return n / s if s else 0.0


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench/llm")
    run = load(folder, "run/brief.json")["run"]
    b1 = load(folder, "crossbrief-batch1.json")
    single = load(folder, "llama-single.json")
    parallel = load(folder, "llama-parallel.json")
    bw = load(folder, "bandwidth.json")
    wall, rss = elapsed_and_rss(folder / "run.time")

    print(f"## Main job on the sample articles: {wall:.1f} s wall, peak RSS {rss:.2f} GiB\n")
    print("| stage | items | wall s | prompt tok | prefill s | prefill tok/s | new tok | decode s | decode tok/s | largest batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in run["stages"]:
        print(
            f"| {s['name']} | {s['items']} | {s['wall_s']:.1f} | {s['prompt_tokens']} | {s['prefill_s']:.1f} "
            f"| {s['prefill_tokens_per_s']:.1f} | {s['generated_tokens']} | {s['decode_s']:.1f} "
            f"| {s['decode_tokens_per_s']:.1f} | {s.get('largest_batch') or ''} |"
        )
    llm = [s for s in run["stages"] if s["name"] in LLM_STAGES]
    batched = {
        "prompt_tokens": sum(s["prompt_tokens"] for s in llm),
        "prefill_s": sum(s["prefill_s"] for s in llm),
        "generated_tokens": sum(s["generated_tokens"] for s in llm),
        "decode_s": sum(s["decode_s"] for s in llm),
    }
    batched["prefill_tokens_per_s"] = rate(batched["prompt_tokens"], batched["prefill_s"])
    batched["decode_tokens_per_s"] = rate(batched["generated_tokens"], batched["decode_s"])
    best = max(llm, key=lambda s: s["decode_tokens_per_s"])
    llm_wall = sum(s["wall_s"] for s in llm)
    print(
        f"\nLLM stages: {llm_wall:.1f} s of {wall:.1f} s; prefill {batched['prefill_s']:.1f} s "
        f"({batched['prompt_tokens']} tokens), decode {batched['decode_s']:.1f} s "
        f"({batched['generated_tokens']} tokens)."
    )

    print("\n## The same LLM prompts, crossbrief and llama.cpp (same GGUF, same token ids, same new-token counts)\n")
    print("| engine | mode | prefill tok/s | decode tok/s | decode × llama.cpp single | agreement with crossbrief's run |")
    print("|---|---|---|---|---|---|")
    ref = single["decode_tokens_per_s"]
    rows = [
        ("crossbrief", "batch 1", b1["prefill_tokens_per_s"], b1["decode_tokens_per_s"], f"{b1['agreement']:.4f} ({b1['identical_prompts']}/{b1['prompts']} identical)"),
        ("crossbrief", f"batched (the run, ≤{best.get('largest_batch')} rows)", batched["prefill_tokens_per_s"], batched["decode_tokens_per_s"], "1 (itself)"),
        ("llama.cpp", "single sequence", single["prefill_tokens_per_s"], single["decode_tokens_per_s"], f"{single['agreement_with_crossbrief']:.4f} ({single['identical_prompts']} identical)"),
        ("llama.cpp", f"parallel, ≤{parallel['largest_batch']} sequences", parallel["prefill_tokens_per_s"], parallel["decode_tokens_per_s"], f"{parallel['agreement_with_crossbrief']:.4f} ({parallel['identical_prompts']} identical)"),
    ]
    for engine, mode, pf, dec, agree in rows:
        print(f"| {engine} | {mode} | {pf:.1f} | {dec:.1f} | {rate(dec, ref):.2f} | {agree} |")
    print(
        f"\ncrossbrief's best batched stage ({best['name']}, {best.get('largest_batch')} rows): "
        f"{best['decode_tokens_per_s']:.1f} tok/s = {rate(best['decode_tokens_per_s'], b1['decode_tokens_per_s']):.2f}× its batch-1 decode; "
        f"all LLM stages together {rate(batched['decode_tokens_per_s'], b1['decode_tokens_per_s']):.2f}×. "
        f"Batch-1 decode = {rate(b1['decode_tokens_per_s'], ref):.2f}× llama.cpp's single-sequence decode; "
        f"batched = {rate(batched['decode_tokens_per_s'], parallel['decode_tokens_per_s']):.2f}× llama.cpp's parallel decode."
    )

    ours = load(folder, "crossbrief-sweep.json")
    theirs = {p["rows"]: p for p in load(folder, "llama-sweep.json")["sweep"]}
    print("\n## Decode throughput at fixed length (64 new tokens per row, every row live every step)\n")
    print("| rows | crossbrief tok/s | × its 1 row | llama.cpp tok/s | × its 1 row | crossbrief × llama.cpp |")
    print("|---|---|---|---|---|---|")
    ours1 = ours[0]["decode_tokens_per_s"]
    theirs1 = theirs[min(theirs)]["decode_tokens_per_s"]
    for p in ours:
        t = theirs.get(p["rows"], {}).get("decode_tokens_per_s", 0.0)
        print(
            f"| {p['rows']} | {p['decode_tokens_per_s']:.1f} | {rate(p['decode_tokens_per_s'], ours1):.2f} "
            f"| {t:.1f} | {rate(t, theirs1):.2f} | {rate(p['decode_tokens_per_s'], t):.2f} |"
        )
    top = max(ours, key=lambda p: p["decode_tokens_per_s"])
    print(
        f"\nBest batched aggregate decode: {top['decode_tokens_per_s']:.1f} tok/s at {top['rows']} rows = "
        f"{rate(top['decode_tokens_per_s'], ours1):.2f}× crossbrief's 1-row decode in this sweep and "
        f"{rate(top['decode_tokens_per_s'], b1['decode_tokens_per_s']):.2f}× its batch-1 replay above."
    )

    ceiling = bw["read_gb_s"] * 1e9 / b1["streamed_bytes"]
    print(
        f"\n## Ceiling\n\nMemory read bandwidth {bw['read_gb_s']:.1f} GB/s ({bw['threads']} threads, "
        f"{bw['mib']} MiB buffer); one decoding step reads {b1['streamed_bytes'] / 1e9:.3f} GB of weights, "
        f"so one sequence cannot decode faster than {ceiling:.1f} tok/s. crossbrief batch 1: "
        f"{b1['decode_tokens_per_s']:.1f} tok/s = {rate(b1['decode_tokens_per_s'], ceiling):.0%} of it; "
        f"llama.cpp single: {single['decode_tokens_per_s']:.1f} tok/s = {rate(single['decode_tokens_per_s'], ceiling):.0%}."
    )
    print(f"\nllama.cpp build: {single['engine']}; {single['system_info']}")


if __name__ == "__main__":
    main()
