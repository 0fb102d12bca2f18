"""Exact and near-duplicate detection over decoded image sets.

Exact: equal sha256 of the file bytes. Near: perceptual hashes (imagehash's
pHash, 64 bits) within ``max_hamming`` bits, *confirmed* by pixel similarity
(Pearson correlation of 64x64 thumbnails of what the model sees ≥
``min_correlation``), so two different slices that merely share a hash
neighbourhood are not called duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_HAMMING = 10
MIN_CORRELATION = 0.95


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    kind: str  # "exact" or "near"
    hamming: int
    correlation: float


def _thumbnails(images: np.ndarray, size: int = 64) -> np.ndarray:
    """Zero-mean, unit-norm flattened thumbnails, so a dot product is a correlation."""
    out = []
    for start in range(0, len(images), 512):
        chunk = torch.from_numpy(np.asarray(images[start : start + 512], dtype=np.float32)).unsqueeze(1)
        small = F.interpolate(chunk, size=(size, size), mode="area").flatten(1)
        small = small - small.mean(dim=1, keepdim=True)
        out.append((small / small.norm(dim=1, keepdim=True).clamp_min(1e-6)).numpy())
    return np.concatenate(out)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a[:, None], b[None, :])).astype(np.int16)


def find_pairs(
    hashes_a: np.ndarray,
    images_a: np.ndarray,
    sha_a: list[str],
    hashes_b: np.ndarray | None = None,
    images_b: np.ndarray | None = None,
    sha_b: list[str] | None = None,
    *,
    max_hamming: int = MAX_HAMMING,
    min_correlation: float = MIN_CORRELATION,
) -> list[Pair]:
    """Duplicate pairs within set A (when B is None) or across A × B (indices into each)."""
    within = hashes_b is None
    if within:
        hashes_b, images_b, sha_b = hashes_a, images_a, sha_a
    thumbs_a = _thumbnails(images_a)
    thumbs_b = thumbs_a if within else _thumbnails(images_b)
    pairs: list[Pair] = []
    block = 1024
    for start in range(0, len(hashes_a), block):
        dist = _hamming(hashes_a[start : start + block], hashes_b)
        rows, cols = np.nonzero(dist <= max_hamming)
        rows = rows + start
        if within:
            keep = cols > rows
            rows, cols = rows[keep], cols[keep]
        if len(rows) == 0:
            continue
        corr = np.einsum("ij,ij->i", thumbs_a[rows], thumbs_b[cols])
        for r, c, h, k in zip(rows, cols, dist[rows - start, cols], corr):
            exact = sha_a[r] == sha_b[c]
            if exact or k >= min_correlation:
                pairs.append(Pair(int(r), int(c), "exact" if exact else "near", int(h), float(k)))
    return pairs


def duplicate_groups(n: int, pairs: list[Pair]) -> np.ndarray:
    """Connected components of the duplicate graph: one group id per image."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not pairs:
        return np.arange(n)
    rows = np.array([p.a for p in pairs])
    cols = np.array([p.b for p in pairs])
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]
