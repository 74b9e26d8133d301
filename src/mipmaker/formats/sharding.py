"""Neuroglancer precomputed sharding: shards as aligned boxes of chunks.

With the ``identity`` hash, a shard holds the chunks whose compressed Morton
codes share their high bits. The low ``preshift_bits + minishard_bits`` bits
interleave x, y, z chunk-grid bits (skipping axes that have run out of bits),
so a shard is an axis-aligned box of ``2**bx x 2**by x 2**bz`` chunks; we pick
the bit count that makes it the largest box within the requested shard shape.
"""

from __future__ import annotations

import math

__all__ = ["morton_shard_chunks", "precomputed_write_unit", "precomputed_sharding"]


def _grid_bits(shape, chunk):
    return [max(0, math.ceil(math.log2(-(-n // c)))) if n > c else 0 for n, c in zip(shape, chunk)]


def morton_shard_chunks(grid_bits, low_bits):
    """Chunks per shard along x, y, z when a shard spans the `low_bits` lowest code bits.

    Examples
    --------
    >>> morton_shard_chunks([3, 3, 1], 6)
    (8, 4, 2)
    """
    counts = [0, 0, 0]
    taken = 0
    level = 0
    while taken < low_bits and level < max(grid_bits, default=0):
        for a in range(3):
            if level < grid_bits[a] and taken < low_bits:
                counts[a] += 1
                taken += 1
        level += 1
    return tuple(2**c for c in counts)


def _low_bits(shape, chunk, shard):
    """The most low code bits whose shard box fits inside `shard` voxels."""
    bits = _grid_bits(shape, chunk)
    best = 0
    for n in range(sum(bits) + 1):
        box = morton_shard_chunks(bits, n)
        if all(b * c <= max(s, c) for b, c, s in zip(box, chunk, shard)):
            best = n
    return best, bits


def precomputed_write_unit(shape, chunk, shard):
    """The shard (voxels, x, y, z) a requested `shard` shape becomes for one level."""
    n, bits = _low_bits(shape, chunk, shard)
    return tuple(b * c for b, c in zip(morton_shard_chunks(bits, n), chunk))


def precomputed_sharding(shape, chunk, write_unit):
    """The ``sharding`` spec of a scale whose shards are `write_unit` voxels.

    Examples
    --------
    >>> spec = precomputed_sharding((512, 512, 128), (64, 64, 64), (512, 256, 128))
    >>> spec["preshift_bits"] + spec["minishard_bits"], spec["shard_bits"]
    (6, 1)
    """
    n, bits = _low_bits(shape, chunk, write_unit)
    preshift = min(n, 3)  # minishards of up to 8 chunks: small indices, few lookups
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": preshift,
        "hash": "identity",
        "minishard_bits": n - preshift,
        "shard_bits": max(0, sum(bits) - n),
        "minishard_index_encoding": "gzip",
        "data_encoding": "raw",
    }
