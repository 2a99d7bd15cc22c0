"""The atom solver's connected components against a plain union-find."""

import random

import torch

from structprune.flow.atoms import connected_components


def _union_find_labels(n: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the smaller id stays the root
    return [find(x) for x in range(n)]


def test_connected_components_label_each_node_with_the_smallest_id_of_its_component():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 60)
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 2 * n))]
        a = torch.tensor([e[0] for e in edges], dtype=torch.long)
        b = torch.tensor([e[1] for e in edges], dtype=torch.long)
        label = connected_components(n, a, b)
        assert label.dtype == torch.long and label.tolist() == _union_find_labels(n, edges)
