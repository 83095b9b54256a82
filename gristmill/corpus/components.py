"""Connected components of a large edge list, computed on Dask (no single-node union-find).

The algorithm is the alternating *large-star* / *small-star* of Kiveris et al.,
"Connected Components in MapReduce and Beyond" (SoCC 2014): each step is one shuffle of
the edge list on a node column followed by a per-node rule, and edges never outnumber
those of the input. It converges in O(log² n) rounds to one star per component whose
centre is the component's smallest node, so a node's label is the smallest node id
connected to it. A round's edge set is fingerprinted (order-independent hash sum and
count) to detect the fixed point. Memory per task is bounded by a partition of edges.

Nodes are int64; callers map their ids to integers (any order: the label is only a
component name, the caller picks the document to keep).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

_EDGE_META = pd.DataFrame({"u": pd.Series(dtype="int64"), "v": pd.Series(dtype="int64")})
_LABEL_META = pd.DataFrame({"node": pd.Series(dtype="int64"), "label": pd.Series(dtype="int64")})
MAX_ROUNDS = 200


def _edges(u: np.ndarray, v: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"u": u.astype(np.int64, copy=False), "v": v.astype(np.int64, copy=False)})
    return df[df.u != df.v].drop_duplicates(ignore_index=True)


def _both_ways(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.rename(columns={"u": "v", "v": "u"})], ignore_index=True)


def _small_key(df: pd.DataFrame) -> pd.DataFrame:
    """Orient each edge from its larger endpoint (``u``) to its smaller one (``v``)."""
    u, v = df.u.to_numpy(), df.v.to_numpy()
    return pd.DataFrame({"u": np.maximum(u, v), "v": np.minimum(u, v)})


def large_star_local(df: pd.DataFrame) -> pd.DataFrame:
    """Large-star on edges grouped by ``u`` (both directions present): link larger neighbours to the min."""
    if df.empty:
        return _EDGE_META.copy()
    m = np.minimum(df.groupby("u").v.transform("min").to_numpy(), df.u.to_numpy())
    keep = df.v.to_numpy() > df.u.to_numpy()
    return _edges(df.v.to_numpy()[keep], m[keep])


def small_star_local(df: pd.DataFrame) -> pd.DataFrame:
    """Small-star on edges keyed by their larger endpoint ``u``: link ``u`` and its smaller neighbours to their min."""
    if df.empty:
        return _EDGE_META.copy()
    m = df.groupby("u").v.transform("min").to_numpy()
    u, v = df.u.to_numpy(), df.v.to_numpy()
    return _edges(np.concatenate([u, v]), np.concatenate([m, m]))


def _fingerprint(df: pd.DataFrame) -> pd.DataFrame:
    # Order-independent: sum of per-edge hashes (wrapping), and the edge count.
    from gristmill.corpus.minhash import mix64

    o = _small_key(df)
    h = mix64(o.u.to_numpy().astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
              ^ o.v.to_numpy().astype(np.uint64))
    return pd.DataFrame({"h": [int(h.sum(dtype=np.uint64)) & 0x7FFFFFFFFFFFFFFF], "n": [len(o)]})


def _fp_value(edges) -> tuple[int, int]:  # noqa: ANN001 - a dask DataFrame
    parts = edges.map_partitions(_fingerprint, meta=pd.DataFrame({"h": pd.Series(dtype="int64"),
                                                                   "n": pd.Series(dtype="int64")}))
    df = parts.compute()
    return int(df.h.sum()) & 0x7FFFFFFFFFFFFFFF, int(df.n.sum())


def connected_components(edges, npartitions: int | None = None):  # noqa: ANN001, ANN201
    """Label every node of an undirected dask edge list (``u``, ``v`` int64) with its component's min node.

    Returns a dask DataFrame (``node``, ``label``), one row per node that appears in an edge
    (isolated nodes are their own component and are not listed).
    """
    n = npartitions or edges.npartitions
    cur = edges.map_partitions(lambda d: _edges(d.u.to_numpy(), d.v.to_numpy()), meta=_EDGE_META)
    cur = cur.persist()
    prev = _fp_value(cur)
    for rnd in range(1, MAX_ROUNDS + 1):
        both = cur.map_partitions(_both_ways, meta=_EDGE_META).shuffle(on="u", npartitions=n)
        cur = both.map_partitions(large_star_local, meta=_EDGE_META)
        keyed = cur.map_partitions(_small_key, meta=_EDGE_META).shuffle(on="u", npartitions=n)
        cur = keyed.map_partitions(small_star_local, meta=_EDGE_META).persist()
        fp = _fp_value(cur)
        log.debug("components round %d: %d edges", rnd, fp[1])
        if fp == prev:
            break
        prev = fp
    else:  # pragma: no cover - O(log^2 n) rounds in theory; a guard against a bug, not a limit
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    log.info("connected components: converged after %d rounds", rnd)
    labels = cur.map_partitions(_labels, meta=_LABEL_META)
    # A centre is listed by every partition holding one of its edges: keep one row per node.
    return labels.drop_duplicates(subset=["node"], split_out=n)


def _labels(df: pd.DataFrame) -> pd.DataFrame:
    """From the converged stars (edges child -> centre), one row per node; centres label themselves."""
    o = _small_key(df)
    kids = pd.DataFrame({"node": o.u.to_numpy(), "label": o.v.to_numpy()})
    roots = pd.DataFrame({"node": o.v.to_numpy(), "label": o.v.to_numpy()})
    return pd.concat([kids, roots], ignore_index=True).drop_duplicates(ignore_index=True)
