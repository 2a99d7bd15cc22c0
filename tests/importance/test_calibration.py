"""Calibrated criteria: activation-aware (|W| x ||X||), Taylor with an LM loss and the Hessian
criterion, fed by real text inside ``with imp.calibrate(model):``, on a pruned-as-you-go model and
under a gloo process group."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from importance.conftest import group_rooted_at
from structprune.importance.calibration import language_model_loss


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_activation_scores_are_weight_times_input_norm():
    torch.manual_seed(0)
    model, x = MLP().eval(), torch.randn(5, 3, 6)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    imp = tp.importance.ActivationImportance(group_reduction="sum", normalizer=None)
    with imp.calibrate(model):
        model(x[:2])
        model(x[2:])
    hidden = torch.relu(model.fc1(x)).reshape(-1, 8)
    x_norm, h_norm = x.reshape(-1, 6).norm(dim=0), hidden.norm(dim=0)
    expected = (model.fc1.weight.abs() * x_norm).sum(1) + h_norm * model.fc2.weight.abs().sum(0)
    scores = imp(group_rooted_at(graph, model.fc1))
    assert torch.allclose(scores, expected.detach(), rtol=1e-4)


def test_activation_keeps_a_neuron_reading_a_loud_input_that_magnitude_would_drop():
    torch.manual_seed(0)
    model = MLP().eval()
    with torch.no_grad():
        model.fc1.weight[:, 0] = 0.0  # only neuron 0 reads input 0, with small weights ...
        model.fc1.weight[0] = 0.05
    x = torch.randn(64, 6)
    x[:, 0] *= 1000  # ... and input 0 is by far the loudest
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = group_rooted_at(graph, model.fc1)
    activation = tp.importance.ActivationImportance(group_reduction="first")
    with activation.calibrate(model):
        model(x)
    magnitude = tp.importance.MagnitudeImportance(p=1, group_reduction="first")
    assert int(magnitude(group).argmin()) == 0 and int(activation(group).argmax()) == 0


def tiny_llama():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    return transformers.LlamaForCausalLM(config).eval()


def gloss_batches(count=3, length=12):
    """Token ids of real WordNet glosses (words hashed into a 96-word vocabulary)."""
    from structprune.demos.wordnet import load_glosses

    try:
        glosses = load_glosses()[:count * 2]
    except FileNotFoundError as error:
        pytest.skip(str(error))
    rows = [[3 + sum(map(ord, w)) % 93 for w in g.definition.split()][:length] for g in glosses]
    rows = [r + [0] * (length - len(r)) for r in rows]
    ids = torch.tensor(rows)
    return [{"input_ids": ids[k:k + 2], "attention_mask": (ids[k:k + 2] > 0).long()} for k in range(0, len(ids), 2)]


def calibrate(imp, model, batches):
    with imp.calibrate(model):
        for batch in batches:
            out = model(**batch)
            if getattr(imp, "needs_gradients", False):
                language_model_loss(out.logits, batch["input_ids"], batch["attention_mask"]).backward()


@pytest.mark.parametrize("name", ["activation", "taylor", "hessian"])
def test_calibrated_criteria_prune_an_llm_in_one_step(name):
    model = tiny_llama()
    batches = gloss_batches()
    imp = tp.importance.create(name)
    calibrate(imp, model, batches)
    pruner = tp.pruner.BasePruner(model, batches[0]["input_ids"], importance=imp, pruning_ratio=0.5,
                                  prune_num_heads=True, head_pruning_ratio=0.5, ignored_layers=[model.lm_head],
                                  output_transform=lambda o: o.logits)
    groups = list(pruner.step(interactive=True))
    for group in groups:  # each group is scored after the ones before it were pruned
        assert imp(group) is not None
        group.prune()
    assert len(groups) == len(pruner.records) - 2  # the kv-group partners of the query heads stay
    assert model.config.hidden_size == 16 and model.config.intermediate_size == 32
    assert model.config.num_attention_heads == 2
    assert model(**batches[0]).logits.shape == (2, 12, 96)


def test_hessian_calibration_counts_each_backward_as_a_sample():
    model = tiny_llama()
    imp = tp.importance.HessianImportance()
    calibrate(imp, model, gloss_batches())
    assert set(imp._count.values()) == {3}
    assert all(p.grad is None for p in model.parameters())


def test_statistics_are_all_reduced_under_a_process_group(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = MLP()
        imp = tp.importance.ActivationImportance()
        x = torch.randn(4, 6)
        with imp.calibrate(model):
            model(x)
        assert torch.allclose(imp.inputs.norm(model.fc1), x.norm(dim=0))
    finally:
        torch.distributed.destroy_process_group()


def _calibrate_half(rank: int, store: str, x: torch.Tensor, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = MLP()
        imp = tp.importance.ActivationImportance()
        with imp.calibrate(model):
            model(x[rank::2])  # each rank sees half of the calibration data
        results[rank] = imp.inputs.norm(model.fc1)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_see_the_statistics_of_all_the_data(tmp_path):
    import torch.multiprocessing as mp

    x = torch.randn(8, 6)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_calibrate_half, args=(str(tmp_path / "store"), x, results), nprocs=2)
        norms = dict(results)
    assert torch.allclose(norms[0], x.norm(dim=0), atol=1e-5) and torch.allclose(norms[1], norms[0])
