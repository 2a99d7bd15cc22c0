"""Accuracy after pruning, every criterion, structprune side by side with Torch-Pruning.

The seed's results table (ResNet-56 / CIFAR-10 at ~2x fewer MACs: Base, Pruned, Delta Acc, Speed
Up) reproduced on real data at CPU scale: one shared base model trained on Fashion-MNIST
(``structprune.demos``), then for each method and each library: prune to ``speedup`` x fewer MACs
(structprune's ``speedup`` target; Torch-Pruning's ``pruning_ratio`` found by bisection), record the
accuracy before fine-tuning, fine-tune with the same schedule, record it again.  Slimming (BN) and
Group rows start from a copy of the base sparse-trained with that library's ``regularize``; the
iterative rows prune in 5 steps with a short fine-tune between steps, then take the common
fine-tune.  Rows alternate between the libraries.  Tables: ResNet at 2x and 4x, a VGG-style net
at 8x.  Writes ``results/accuracy.json``, ``results/accuracy.md`` and ``results/accuracy.png``.

Example::

    python -m benchmarks.accuracy --quick            # ~3 minute smoke run
    python -m benchmarks.accuracy --device cuda --depth 56 --train-images 60000 --epochs 30
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

import structprune  # noqa: E402
from benchmarks.accuracy_methods import (ALL_METHODS, GRADIENT_CRITERIA, ITERATIVE_STEPS, SHORT_METHODS,  # noqa: E402
                                         Library, Method, Regularizer, prepare_gradients)
from structprune.demos.report import format_table  # noqa: E402
from structprune.demos.resnet import CifarResNet  # noqa: E402
from structprune.demos.train import accuracy, train_classifier  # noqa: E402
from structprune.demos.vision import VisionConfig, load_data  # noqa: E402

RESULTS = Path(__file__).parent / "results"
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Config:
    """Data and schedule shared by every row (defaults: the CPU run, under an hour on 2 cores)."""

    depth: int = 20
    image_size: int = 14
    train_images: int = 4000
    val_images: int = 2000
    epochs: float = 6.0
    sparse_epochs: float = 1.0
    finetune_epochs: float = 0.75
    lr: float = 0.05
    batch_size: int = 128
    calibration: int = 256
    seed: int = 0
    device: str = "cpu"
    reg: Regularizer = field(default_factory=Regularizer)


@dataclass(frozen=True)
class Table:
    """One table: a model family at one speed-up with its methods."""

    title: str
    model: str
    speedup: float
    methods: tuple[Method, ...]


class VGG(nn.Module):
    """A VGG-style plain net (3x3 conv + BN + ReLU, max-pool between stages, global pool, linear)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 stages: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128, 128), (256, 256))):
        super().__init__()
        layers: list[nn.Module] = []
        for i, stage in enumerate(stages):
            if i:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            for width in stage:
                layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(in_channels, in_channels), nn.ReLU(inplace=True),
                                        nn.Linear(in_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def tables(config: Config, quick: bool) -> list[Table]:
    resnet = f"ResNet-{config.depth}"
    if quick:
        few = (Method("l2"), Method("bn"), Method("group", global_pruning=True), Method("taylor"),
               Method("hessian"), Method("l2", iterative=True))
        return [Table(f"{resnet} / Fashion-MNIST / 2x", "resnet", 2.0, few),
                Table("VGG / Fashion-MNIST / 8x", "vgg", 8.0, (Method("l2"),))]
    return [Table(f"{resnet} / Fashion-MNIST / 2x", "resnet", 2.0, ALL_METHODS),
            Table(f"{resnet} / Fashion-MNIST / 4x", "resnet", 4.0, SHORT_METHODS),
            Table("VGG / Fashion-MNIST / 8x", "vgg", 8.0, SHORT_METHODS)]


def prepare_data(config: Config) -> Data:
    """The seeded training subset and a seeded validation subset of the test split, resized."""
    train_x, train_y, test_x, test_y = load_data(VisionConfig(train_images=config.train_images, seed=config.seed))
    keep = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(config.seed + 7))[:config.val_images]
    test_x, test_y = test_x[keep], test_y[keep]
    if config.image_size != train_x.shape[-1]:
        size = (config.image_size, config.image_size)
        train_x = F.interpolate(train_x, size=size, mode="area")
        test_x = F.interpolate(test_x, size=size, mode="area")
    return train_x, train_y, test_x, test_y


def build_model(name: str, config: Config) -> nn.Module:
    torch.manual_seed(config.seed)
    model = CifarResNet(config.depth, in_channels=1, num_classes=10) if name == "resnet" else VGG()
    return model.to(config.device)


def base_file(name: str, c: Config) -> str:
    """The cache file name of a trained base: every setting that shapes its weights."""
    depth = f"{c.depth}-" if name == "resnet" else ""
    return (f"{name}{depth}-{c.image_size}px-{c.train_images}img-{c.epochs:g}ep-lr{c.lr:g}-b{c.batch_size}"
            f"-seed{c.seed}-{c.device}.pt")


def save_atomically(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``state`` to ``path`` so that a process waiting for the file never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def progress(desc: str):
    from tqdm import tqdm
    return functools.partial(tqdm, desc=desc, leave=False, mininterval=10, file=sys.stderr)


class Bench:
    """Runs the tables, caching the base and sparse-trained models they share."""

    def __init__(self, config: Config, data: Data, libraries: list[Library], cache: Path | None = None):
        self.config, self.data, self.libraries, self.cache = config, data, libraries, cache
        self.example = data[0][:1].to(config.device)
        self.bases: dict[str, tuple[nn.Module, float]] = {}
        self.sparse: dict[tuple, tuple[nn.Module, float]] = {}

    def train(self, model: nn.Module, epochs: float, lr: float, seed: int, desc: str, hook=None) -> None:
        c = self.config
        train_classifier(model, self.data[0], self.data[1], epochs, c.batch_size, lr, seed, progress(desc), hook)

    def evaluate(self, model: nn.Module) -> float:
        return accuracy(model, self.data[2], self.data[3])

    def base(self, name: str) -> tuple[nn.Module, float]:
        if name not in self.bases:
            model = build_model(name, self.config)
            path = None if self.cache is None else self.cache / base_file(name, self.config)
            if path is not None and path.exists():
                model.load_state_dict(torch.load(path, map_location=self.config.device))
                model.eval()
            else:
                self.train(model, self.config.epochs, self.config.lr, self.config.seed, f"train {name} base")
                if path is not None:
                    save_atomically(model.state_dict(), path)
            self.bases[name] = (model, self.evaluate(model))
            print(f"{name} base: {self.bases[name][1]:.2f}%" + (f" ({path})" if path else ""), flush=True)
        return self.bases[name]

    def start(self, table: Table, library: Library, method: Method) -> tuple[nn.Module, float | None]:
        """A copy of the base, or of its sparse-trained version (and that one's accuracy)."""
        base, _ = self.base(table.model)
        if not method.sparse:
            return copy.deepcopy(base), None
        key = (table.model, library.name, method.criterion)
        if key not in self.sparse:
            c = self.config
            model = copy.deepcopy(base)
            hook = library.regularizer(model, self.example, method, c.reg.of(method.criterion))
            self.train(model, c.sparse_epochs, c.lr / 2, c.seed + 2, f"sparse {table.model} {library.name} "
                       f"{method.criterion}", hook)
            self.sparse[key] = (model, self.evaluate(model))
            print(f"{table.model} sparse-trained with {library.name} {method.criterion}: {self.sparse[key][1]:.2f}%",
                  flush=True)
        model, acc = self.sparse[key]
        return copy.deepcopy(model), acc

    def prune(self, model: nn.Module, table: Table, library: Library, method: Method, label: str) -> None:
        c = self.config
        steps = ITERATIVE_STEPS if method.iterative else 1
        reg = c.reg.of(method.criterion) if method.sparse else 0.0
        pruner, importance = library.prune_plan(model, self.example, method, table.speedup, reg, steps)
        for step in range(steps):
            if method.criterion in GRADIENT_CRITERIA:
                prepare_gradients(model, importance, self.data[0][:c.calibration], self.data[1][:c.calibration])
            pruner.step()
            model.zero_grad(set_to_none=True)
            if step < steps - 1:
                self.train(model, c.finetune_epochs / steps, c.lr / 2, c.seed + 10 + step, f"{label} step {step + 1}")

    def row(self, table: Table, library: Library, method: Method) -> dict[str, Any]:
        c = self.config
        start = time.perf_counter()
        base, base_acc = self.base(table.model)
        base_macs, base_params = structprune.utils.count_ops_and_params(base, self.example)
        model, sparse_acc = self.start(table, library, method)
        label = f"{table.model} {table.speedup:g}x {library.name} {method.name}"
        torch.manual_seed(c.seed + 1)
        self.prune(model, table, library, method, label)
        macs, params = structprune.utils.count_ops_and_params(model, self.example)
        pruned = self.evaluate(model)
        self.train(model, c.finetune_epochs, c.lr / 2, c.seed + 1, f"{label} fine-tune")
        tuned = self.evaluate(model)
        return dict(table=table.title, model=table.model, target=table.speedup, library=library.name,
                    method=method.name, base=base_acc, sparse=sparse_acc, pruned=pruned, finetuned=tuned,
                    delta=tuned - base_acc, speedup=base_macs / macs, base_params=int(base_params),
                    params=int(params), base_macs=int(base_macs), macs=int(macs),
                    finetune_epochs=c.finetune_epochs, seconds=time.perf_counter() - start)

    def run(self, table: Table, done: Callable[[dict[str, Any]], None]) -> None:
        """Every row of ``table``, the libraries alternating first; ``done(row)`` after each."""
        for i, method in enumerate(table.methods):
            order = self.libraries if i % 2 == 0 else self.libraries[::-1]
            for library in order:
                row = self.row(table, library, method)
                print(row_line(row), flush=True)
                done(row)


def row_line(r: dict[str, Any]) -> str:
    return (f"{r['table']} | {r['method']} | {r['library']} | base {r['base']:.2f} | no-FT {r['pruned']:.2f} | "
            f"FT {r['finetuned']:.2f} ({r['delta']:+.2f}) | {r['speedup']:.2f}x | {r['seconds']:.0f} s")


def markdown(rows: list[dict[str, Any]]) -> str:
    """One seed-format table per benchmark table, the libraries' rows of a method side by side."""
    out = []
    for title in dict.fromkeys(r["table"] for r in rows):
        cells = [[r["method"], r["library"], f"{r['base']:.2f}", f"{r['pruned']:.2f}", f"{r['finetuned']:.2f}",
                  f"{r['delta']:+.2f}", f"{r['speedup']:.2f}x", _params(r)] for r in rows if r["table"] == title]
        headers = ["Method", "Library", "Base (%)", "Pruned, no FT (%)", "Pruned (%)", "Delta Acc (%)",
                   "Speed Up", "Params"]
        out.append(f"### {title}\n\n{format_table(headers, cells)}\n")
    return "\n".join(out)


def side_by_side(rows: list[dict[str, Any]]) -> str:
    """The seed's columns, one line per method, structprune's numbers beside Torch-Pruning's."""
    out = []
    for title in dict.fromkeys(r["table"] for r in rows):
        found = {(r["method"], r["library"]): r for r in rows if r["table"] == title}
        cells = []
        for method in dict.fromkeys(m for m, _ in found):
            ours, peer = found.get((method, "structprune")), found.get((method, "Torch-Pruning"))
            base = (ours or peer)["base"]
            cells.append([method, f"{base:.2f}", *_side(ours), *_side(peer)])
        headers = ["Method", "Base (%)", "Pruned (%)", "Delta Acc (%)", "Speed Up", "TP Pruned (%)",
                   "TP Delta Acc (%)", "TP Speed Up"]
        out.append(f"### {title}\n\n{format_table(headers, cells)}\n")
    return "\n".join(out)


def _side(row: dict[str, Any] | None) -> list[str]:
    if row is None:
        return ["-", "-", "-"]
    return [f"{row['finetuned']:.2f}", f"{row['delta']:+.2f}", f"{row['speedup']:.2f}x"]


def _params(row: dict[str, Any]) -> str:
    if row.get("params") is None:
        return "-"
    return f"{row['base_params'] / 1e3:.1f} K -> {row['params'] / 1e3:.1f} K"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Fine-tuned accuracy against the measured speed-up, one panel per model, one line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = list(dict.fromkeys(_panel(r) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        mine = [r for r in rows if _panel(r) == panel]
        for library, method in dict.fromkeys((r["library"], r["method"]) for r in mine):
            points = sorted((r["speedup"], r["finetuned"]) for r in mine
                            if r["library"] == library and r["method"] == method)
            ours = library == "structprune"
            ax.plot(*zip(*points), marker="o" if ours else "x", linestyle="-" if ours else ":",
                    label=f"{method} ({'sp' if ours else 'TP'})")
        ax.set(title=panel, xlabel="speed-up (MACs)", ylabel="fine-tuned accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _panel(row: dict[str, Any]) -> str:
    return f"{row['model']}, fine-tune {row.get('finetune_epochs', Config().finetune_epochs):g} epochs"


def libraries(peer: bool) -> list[Library]:
    result = [Library("structprune", structprune)]
    if peer:
        try:
            import torch_pruning
        except ImportError:
            print("Torch-Pruning is not installed (pip install torch-pruning): its rows are skipped")
        else:
            result.append(Library("Torch-Pruning", torch_pruning))
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = Config()
    parser.add_argument("--quick", action="store_true", help="a ~3 minute smoke run (ResNet-8, few rows)")
    parser.add_argument("--depth", type=int, default=d.depth, help="ResNet depth (6n+2: 20, 56, ...)")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="resize Fashion-MNIST to this")
    parser.add_argument("--train-images", type=int, default=d.train_images)
    parser.add_argument("--val-images", type=int, default=d.val_images)
    parser.add_argument("--epochs", type=float, default=d.epochs, help="base training epochs")
    parser.add_argument("--sparse-epochs", type=float, default=d.sparse_epochs)
    parser.add_argument("--finetune-epochs", type=float, default=d.finetune_epochs)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--only", nargs="*", help="run only tables whose title contains one of these")
    parser.add_argument("--methods", nargs="*", help="run only methods with these names (e.g. 'Group', 'L2 global')")
    parser.add_argument("--merge", nargs="*", type=Path,
                        help="report these result files together (a later file's rows replace re-run ones)")
    parser.add_argument("--tag", default="", help="appended to the table titles (e.g. ', fine-tune 3 epochs')")
    parser.add_argument("--base-cache", type=Path,
                        help="keep trained bases here and reuse them (runs split with --methods share one base)")
    parser.add_argument("--no-peer", action="store_true", help="skip Torch-Pruning")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="accuracy", help="stem of the result files")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    config = Config(depth=args.depth, image_size=args.image_size, train_images=args.train_images,
                    val_images=args.val_images, epochs=args.epochs, sparse_epochs=args.sparse_epochs,
                    finetune_epochs=args.finetune_epochs, device=args.device)
    if args.quick:
        config = replace(config, depth=8, train_images=1000, val_images=500, epochs=3.0, sparse_epochs=0.5,
                         finetune_epochs=0.5, calibration=64)
    return config


def selected(table: Table, args: argparse.Namespace) -> Table:
    """``table`` with only the methods named by ``--methods`` (any of the full list), in the order
    named, if given."""
    if not args.methods:
        return table
    by_name = {m.name: m for m in ALL_METHODS}
    unknown = [name for name in args.methods if name not in by_name]
    if unknown:
        raise SystemExit(f"accuracy benchmark: unknown --methods {unknown}; choose from {list(by_name)}")
    return replace(table, methods=tuple(by_name[name] for name in args.methods))


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the selected tables; returns the rows and the run's metadata.  The JSON is rewritten
    after every row (``complete: false`` until the end), so a long run can be read while it goes."""
    torch.set_num_threads(args.threads)
    config = config_from(args)
    start = time.perf_counter()
    bench = Bench(config, prepare_data(config), libraries(not args.no_peer), args.base_cache)
    rows: list[dict[str, Any]] = []
    commit = source_commit()

    def meta(complete: bool) -> dict[str, Any]:
        return dict(config=asdict(config), wall_seconds=time.perf_counter() - start, torch=torch.__version__,
                    commit=commit, args=vars(args),
                    threads=torch.get_num_threads(), quick=args.quick, complete=complete,
                    tables=sorted({r["table"] for r in rows}))

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        write_json(args.out / f"{args.name}.json", rows, [meta(False)])

    for table in tables(config, args.quick):
        if not args.only or any(word in table.title for word in args.only):
            bench.run(replace(selected(table, args), title=table.title + args.tag), done)
    return rows, [meta(True)]


def source_commit() -> str:
    """The checkout's commit (with ``+dirty`` when files differ from it), or ``unknown``."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_json(path: Path, rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(runs=runs, rows=rows), indent=1, default=str) + "\n")


def merged(paths: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of several result files, methods in the seed's order; a later file's row replaces
    an earlier one of the same table, method and library (a re-run)."""
    rows: dict[tuple, dict[str, Any]] = {}
    metas = []
    for path in paths:
        data = json.loads(path.read_text())
        schedule = data["runs"][0]["config"]["finetune_epochs"]
        for r in data["rows"]:
            rows[(r["table"], r["method"], r["library"])] = dict(r, finetune_epochs=r.get("finetune_epochs", schedule))
        metas += data["runs"]
    titles = {title: i for i, title in enumerate(dict.fromkeys(r["table"] for r in rows.values()))}
    order = {m.name: i for i, m in enumerate(ALL_METHODS)}
    return sorted(rows.values(), key=lambda r: (titles[r["table"]], order.get(r["method"], len(order)))), metas


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    rows, runs = merged(args.merge) if args.merge else run(args)
    walls = ", ".join(f"{m['wall_seconds'] / 60:.1f} min on {m['config']['device']} ({m['threads']} threads)"
                      for m in runs)
    text = (f"## Side by side (fine-tuned)\n\n{side_by_side(rows)}\n## Every row\n\n{markdown(rows)}"
            f"\nwall time: {walls}\n")
    print(text)
    write_json(args.out / f"{args.name}.json", rows, runs)
    (args.out / f"{args.name}.md").write_text(text)
    plot(rows, args.out / f"{args.name}.png")
    return rows


if __name__ == "__main__":
    main()
