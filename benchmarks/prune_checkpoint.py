"""Prune a Llama-3-8B-shaped random bf16 safetensors checkpoint shard by shard; report time and peak memory.

1. generate the checkpoint from the config's parameter shapes, one tensor at a time (random bf16,
   ``--shard-gb`` per shard, an index, ``config.json``), never holding the model in memory;
2. in a child process, ``structprune.adapters.prune_checkpoint`` (``--ratio`` of the hidden size and
   FFN, ``--head-ratio`` of the kv heads) with its wall time and peak RSS (``ru_maxrss``);
3. check the result: every shard header matches the model that ``from_pretrained`` would build from
   the new config (built on meta), and for a few layers (``--check-layers``) the MLP equals the same
   layer pruned in memory by ``MagnitudePruner`` (from the original weights, hidden size sliced as
   the checkpoint kept it);
4. delete both checkpoints (unless ``--keep``).  Writes ``results/prune_checkpoint.json``.

Example::

    python -m benchmarks.prune_checkpoint --dir /work/tmp/llama8b        # 16 GB on disk, then removed
    python -m benchmarks.prune_checkpoint --layers 2 --hidden 256 --intermediate 512 --vocab 1000
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

from structprune.adapters.shards import INDEX_NAME, SafetensorsCheckpoint, ShardWriter  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def llama_config(args: argparse.Namespace):
    import transformers

    return transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=False, torch_dtype="bfloat16",
        architectures=["LlamaForCausalLM"])


def generate(config, directory: Path, shard_bytes: int) -> int:
    """Random bf16 shards for ``config``'s parameter shapes, written tensor by tensor; returns bytes."""
    import transformers

    with torch.device("meta"):
        shapes = {n: tuple(t.shape) for n, t in transformers.LlamaForCausalLM(config).state_dict().items()}
    shards, current, size = [], {}, 0
    for name, shape in shapes.items():
        nbytes = 2 * int(torch.Size(shape).numel())
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name], size = ("BF16", shape), size + nbytes
    shards.append(current)
    directory.mkdir(parents=True, exist_ok=True)
    weight_map, total = {}, 0
    for i, layout in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        with ShardWriter(directory / file, layout) as writer:
            for name, (_, shape) in layout.items():
                writer.write(name, torch.randn(shape, dtype=torch.bfloat16).mul_(0.02))
        total += writer.total_bytes
        weight_map.update(dict.fromkeys(layout, file))
    (directory / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config.save_pretrained(directory)
    return total


def child_prune(source: str, out: str, ratio: float, head_ratio: float) -> None:
    """Runs in the child: prune, then print the result and this process's peak RSS as JSON."""
    from structprune.adapters import prune_checkpoint

    start = time.perf_counter()
    result = prune_checkpoint(source, out, pruning_ratio=ratio, prune_num_heads=head_ratio > 0,
                              head_pruning_ratio=head_ratio)
    print(json.dumps({"wall_s": round(time.perf_counter() - start, 1), "seconds": result.seconds,
                      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      "params_before": result.params_before, "params_after": result.params_after,
                      "bytes_written": result.bytes_written, "config_fields": result.config_fields}))


def check_headers(out: Path) -> int:
    """Every stored tensor has the shape the pruned config rebuilds (what from_pretrained checks)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(out))
    with torch.device("meta"):
        expected = {n: tuple(t.shape) for n, t in transformers.AutoModelForCausalLM.from_config(config)
                    .state_dict().items()}
    stored = SafetensorsCheckpoint(out)
    wrong = [n for n in expected if stored.info(n).shape != expected[n]]
    if wrong or set(stored.names()) != set(expected):
        raise AssertionError(f"shards do not match the pruned config: {wrong[:3]}, "
                             f"{sorted(set(stored.names()) ^ set(expected))[:3]}")
    return len(expected)


def hidden_kept(source: SafetensorsCheckpoint, pruned: SafetensorsCheckpoint) -> torch.Tensor:
    """Which original hidden channels the pruned embedding kept (columns matched on the first rows)."""
    original = next(source.row_blocks("model.embed_tokens.weight", 1 << 20))[1][:16].float()
    kept = next(pruned.row_blocks("model.embed_tokens.weight", 1 << 20))[1][:16].float()
    matches = (kept.T[:, None, :] == original.T[None, :, :]).all(-1)
    if not bool((matches.sum(1) == 1).all()):
        raise AssertionError("pruned embedding columns do not match original columns one to one")
    return matches.int().argmax(1)


def check_mlp(source: SafetensorsCheckpoint, pruned: SafetensorsCheckpoint, config, layer: int, ratio: float) -> None:
    """Layer ``layer``'s MLP pruned in memory (hidden size sliced as kept) equals the streamed one."""
    import transformers

    import structprune as tp

    hidden = hidden_kept(source, pruned)
    prefix = f"model.layers.{layer}.mlp."
    narrow = copy.deepcopy(config)
    narrow.hidden_size = len(hidden)
    mlp = transformers.models.llama.modeling_llama.LlamaMLP(narrow).to(torch.bfloat16)
    with torch.no_grad():
        for name in ("gate_proj", "up_proj", "down_proj"):
            weight = source.read(prefix + name + ".weight")
            weight = weight[:, hidden] if name != "down_proj" else weight[hidden]
            getattr(mlp, name).weight = torch.nn.Parameter(weight.contiguous())
    example = torch.zeros(1, 4, len(hidden), dtype=torch.bfloat16)
    tp.pruner.MagnitudePruner(mlp, example, pruning_ratio=ratio, keep_config_expressible=False).step()
    for name in ("gate_proj", "up_proj", "down_proj"):
        if not torch.equal(getattr(mlp, name).weight, pruned.read(prefix + name + ".weight")):
            raise AssertionError(f"layer {layer} {name}: streamed prune differs from the in-memory prune")


def run(args: argparse.Namespace) -> dict:
    config, source, out = llama_config(args), args.dir, args.dir.with_name(args.dir.name + "-pruned")
    start = time.perf_counter()
    total = generate(config, source, int(args.shard_gb * 2**30)) if not (source / INDEX_NAME).exists() else 0
    generated = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    child = subprocess.run([sys.executable, "-m", "benchmarks.prune_checkpoint", "--child", str(source), str(out),
                            str(args.ratio), str(args.head_ratio)], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1])
    if child.returncode:
        raise RuntimeError(f"prune_checkpoint failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(generate_s=round(generated, 1), source_gb=round(total / 2**30, 2), shards=len(
        SafetensorsCheckpoint(source).files), tensors_checked=check_headers(out))
    layers = [int(i) % args.layers for i in args.check_layers.split(",") if i]
    pruned = SafetensorsCheckpoint(out)
    for layer in layers:
        check_mlp(SafetensorsCheckpoint(source), pruned, config, layer, args.ratio)
    result["mlp_layers_equal_in_memory"] = layers
    if not args.keep:
        shutil.rmtree(out)
        shutil.rmtree(source)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_prune(argv[1], argv[2], float(argv[3]), float(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/work/tmp/llama3-8b-random"),
                        help="where the random checkpoint goes (its sibling DIR-pruned gets the result)")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=14336)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--shard-gb", type=float, default=5.0, help="shard size of the generated checkpoint")
    parser.add_argument("--ratio", type=float, default=0.5, help="fraction of hidden and FFN channels removed")
    parser.add_argument("--head-ratio", type=float, default=0.5, help="fraction of kv heads removed (0: none)")
    parser.add_argument("--check-layers", default="0,-1", help="layers whose MLP is compared with in-memory pruning")
    parser.add_argument("--keep", action="store_true", help="keep both checkpoints")
    parser.add_argument("--json", type=Path, default=RESULTS / "prune_checkpoint.json")
    args = parser.parse_args(argv)
    result = run(args)
    rows = [("source", f"{result['source_gb']} GB in {result['shards']} shards (generated in {result['generate_s']} s)"),
            ("params", f"{result['params_before'] / 1e9:.2f} B -> {result['params_after'] / 1e9:.2f} B"),
            ("prune wall time", f"{result['wall_s']} s ({', '.join(f'{k} {v} s' for k, v in result['seconds'].items())})"),
            ("peak RSS (prune process)", f"{result['peak_rss_gb']} GB"),
            ("config", ", ".join(f"{k}={v}" for k, v in result["config_fields"].items())),
            ("checks", f"{result['tensors_checked']} tensor shapes = pruned config; MLP of layers "
                       f"{result['mlp_layers_equal_in_memory']} = in-memory prune")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
