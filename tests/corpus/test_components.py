"""Connected components on Dask DataFrames, checked against a reference union-find."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from gristmill.corpus.components import connected_components, large_star_local, small_star_local


def _reference(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in list(parent)}


def _components(edges: list[tuple[int, int]], nparts: int) -> dict[int, int]:
    df = pd.DataFrame(edges, columns=["u", "v"]).astype("int64")
    with dask.config.set(scheduler="sync"):
        out = connected_components(dd.from_pandas(df, npartitions=nparts)).compute()
    assert out.node.is_unique
    return dict(zip(out.node.tolist(), out.label.tolist()))


def _shuffled(edges: list[tuple[int, int]], seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    flipped = [(v, u) if rng.random() < 0.5 else (u, v) for u, v in edges]
    return [flipped[i] for i in rng.permutation(len(flipped))]


@pytest.mark.parametrize("nparts", [1, 3])
def test_long_chain_in_scrambled_node_order(nparts: int) -> None:
    rng = np.random.default_rng(7)
    nodes = rng.permutation(np.arange(1000, 1300)).tolist()
    edges = _shuffled(list(zip(nodes[:-1], nodes[1:])), 1)
    got = _components(edges, nparts)
    assert set(got.values()) == {1000} and len(got) == 300


def test_stars_and_disjoint_pairs() -> None:
    star = [(50, leaf) for leaf in range(51, 90)] + [(leaf, 200) for leaf in range(201, 230)]
    pairs = [(i, i + 1) for i in range(1000, 1040, 2)]
    got = _components(_shuffled(star + pairs, 2), 2)
    assert {got[x] for x in range(50, 90)} == {50}
    assert {got[x] for x in range(200, 230)} == {200}
    assert all(got[i] == got[i + 1] == i for i in range(1000, 1040, 2))
    assert len(set(got.values())) == 2 + 20


def test_random_graph_matches_union_find() -> None:
    rng = np.random.default_rng(3)
    edges = list(zip(rng.integers(0, 3000, 2500).tolist(), rng.integers(0, 3000, 2500).tolist()))
    edges += [(5, 5), (7, 7)]  # self-loops are ignored
    got = _components(edges, 4)
    want = {k: v for k, v in _reference(edges).items() if any(k in e and e[0] != e[1] for e in edges)}
    assert got == want


def test_local_steps_follow_the_star_rules() -> None:
    # Large-star at node 3 with neighbours {1, 4, 5}: 4 and 5 are linked to 1.
    both = pd.DataFrame({"u": [3, 3, 3], "v": [1, 4, 5]}, dtype="int64")
    assert sorted(map(tuple, large_star_local(both).to_numpy().tolist())) == [(4, 1), (5, 1)]
    # Small-star at node 9 with smaller neighbours {2, 6}: 9 and 6 are linked to 2.
    keyed = pd.DataFrame({"u": [9, 9], "v": [2, 6]}, dtype="int64")
    assert sorted(map(tuple, small_star_local(keyed).to_numpy().tolist())) == [(6, 2), (9, 2)]
