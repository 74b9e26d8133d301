"""mipmaker.plan: levels, passes and boxes (pure arithmetic, no I/O)."""

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import buildkit as bk
from mipmaker.plan import Plan, auto_factors, format_bytes, make_levels, make_plan

MiB = 1 << 20
# What the planner counts for any task beyond its data (budgets below are relative to it).
TASK_OVERHEAD = bk.task_overhead()


def axis_intervals(p, a):
    """(start, stop) along axis `a` of the boxes of pass `p` (the boxes are a grid)."""
    return [(k * p.box[a], min((k + 1) * p.box[a], p.base_shape[a])) for k in range(p.grid[a])]


def check_plan(plan, workers=1):
    """Every invariant a plan must keep; returns the plan for chaining."""
    levels = plan.levels
    assert [lv.index for lv in levels] == list(range(len(levels)))
    written = [k for p in plan.passes for k in p.levels]
    assert sorted(written) == list(range(len(levels))), "every level written exactly once"
    assert plan.passes[0].base == 0 and plan.passes[0].levels[0] == 0
    for prev, p in zip(plan.passes, plan.passes[1:]):
        assert p.base == max(prev.levels), "a later pass reads the top level of the pass before"
        assert p.base not in p.levels
    assert plan.tasks == sum(len(p) for p in plan.passes)
    for p in plan.passes:
        base = levels[p.base]
        assert p.base_shape == base.shape and list(p.levels) == list(range(p.levels[0], p.levels[-1] + 1))
        assert len(p) == int(np.prod(p.grid)) >= 1
        assert p.voxels == int(np.prod(base.shape))
        # Memory: a task fits the budget, and the tasks run at once fit it together.
        assert p.memory <= plan.memory
        assert 1 <= p.concurrency <= max(1, workers) and p.concurrency * p.memory <= plan.memory
        for k, ratio in zip(p.levels, p.ratios):
            lv = levels[k]
            assert ratio == tuple(f // b for f, b in zip(lv.factor, base.factor))
            assert all(f == r * b for f, r, b in zip(lv.factor, ratio, base.factor))
            for a in range(3):
                boxes = axis_intervals(p, a)
                # Base-level boxes tile the axis: contiguous, no overlap, ending at the edge.
                assert boxes[0][0] == 0 and boxes[-1][1] == base.shape[a]
                assert all(s1 == e0 for (_, e0), (s1, _) in zip(boxes, boxes[1:]))
                assert all(e > s for s, e in boxes)
                step = lv.write_unit[a] * ratio[a]
                for s, e in boxes:
                    # Whole write units of every level: aligned starts, aligned stops or the edge.
                    assert s % step == 0, (k, a, s, step)
                    assert e % step == 0 or e == base.shape[a], (k, a, e, step)
                # ... and the level's part of each box tiles the level the same way.
                parts = [(s // ratio[a], min(-(-e // ratio[a]), lv.shape[a])) for s, e in boxes]
                assert parts[0][0] == 0 and parts[-1][1] == lv.shape[a]
                assert all(s1 == e0 for (_, e0), (s1, _) in zip(parts, parts[1:]))
                for s, e in parts:
                    assert s % lv.write_unit[a] == 0
                    assert e % lv.write_unit[a] == 0 or e == lv.shape[a]
        # box_bounds / level_bounds agree with the per-axis grid (x fastest).
        for i in sorted({0, len(p) - 1, len(p) // 2}):
            idx = np.unravel_index(i, p.grid, order="F")
            start, stop = p.box_bounds(i)
            assert (start, stop) == tuple(zip(*[axis_intervals(p, a)[idx[a]] for a in range(3)]))
            for k, ratio in zip(p.levels, p.ratios):
                lo, hi = p.level_bounds(i, levels[k].shape, ratio)
                assert all(0 <= x < y <= n for x, y, n in zip(lo, hi, levels[k].shape))
        with pytest.raises(IndexError):
            p.box_bounds(len(p))
    return plan


def plan_for(shape, factor, n, chunk, memory, workers=1, shard=None, **kw):
    levels = make_levels(shape, [factor] * n, chunk, shard)
    return check_plan(make_plan(levels, memory=memory, workers=workers, **kw), workers)


# ---------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------

def test_make_levels_odd_shape():
    levels = make_levels((97, 61, 13), [(2, 2, 1)] * 6, (64, 64, 64))
    assert [lv.shape for lv in levels] == [(97, 61, 13), (49, 31, 13), (25, 16, 13), (13, 8, 13), (7, 4, 13),
                                           (4, 2, 13), (2, 1, 13)]
    assert [lv.factor for lv in levels][-1] == (64, 64, 1)
    # Chunks are clipped to the level (a level smaller than a chunk is one chunk).
    assert [lv.chunk for lv in levels] == [(64, 61, 13), (49, 31, 13), (25, 16, 13), (13, 8, 13), (7, 4, 13),
                                           (4, 2, 13), (2, 1, 13)]
    assert all(lv.write_unit == lv.chunk for lv in levels)


def test_make_levels_write_units():
    levels = make_levels((100, 80, 9), [(2, 2, 1)] * 2, (16, 16, 4), (64, 64, 8))
    # Shards are clipped to the level rounded up to whole chunks.
    assert [lv.write_unit for lv in levels] == [(64, 64, 8), (64, 48, 8), (32, 32, 8)]
    assert all(u % c == 0 for lv in levels for u, c in zip(lv.write_unit, lv.chunk))


def test_make_levels_per_level_chunks():
    levels = make_levels((64, 64, 8), [(2, 2, 1)], [(32, 32, 8), (8, 8, 8)])
    assert [lv.chunk for lv in levels] == [(32, 32, 8), (8, 8, 8)]
    with pytest.raises(ValueError, match="`chunks`"):
        make_levels((64, 64, 8), [(2, 2, 1)], [(32, 32, 8)] * 3)


# ---------------------------------------------------------------------------
# Passes and boxes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape,factor,n,chunk,shard", [
    pytest.param((97, 61, 13), (2, 2, 1), 4, (16, 16, 4), None, id="odd"),
    pytest.param((97, 61, 13), (3, 3, 1), 3, (8, 8, 8), (16, 16, 8), id="odd-f3-shard"),
    pytest.param((97, 61, 13), (2, 2, 2), 6, (64, 64, 64), None, id="below-chunk"),
    pytest.param((1, 1, 1), (2, 2, 2), 2, (64, 64, 64), None, id="one-voxel"),
    pytest.param((300, 5, 70), (2, 1, 2), 3, (32, 4, 16), (64, 4, 32), id="flat"),
])
@pytest.mark.parametrize("workers", [1, 3], ids=["w1", "w3"])
def test_plan_invariants(shape, factor, n, chunk, shard, workers):
    plan = plan_for(shape, factor, n, chunk, TASK_OVERHEAD + 400_000, workers, shard)
    # A level smaller than its chunk is one chunk, and still written by exactly one box row.
    top = plan.levels[-1]
    assert all(c <= max(s, 1) for c, s in zip(top.chunk, top.shape))


def test_plan_single_pass_when_it_fits():
    args = (1024, 1024, 64), (2, 2, 1), 4, (128, 128, 64)
    need = plan_for(*args, 1 << 40).passes[0].memory  # one pass, one box
    plan = plan_for(*args, need, workers=1)
    assert [p.levels for p in plan.passes] == [(0, 1, 2, 3, 4)]
    assert plan.passes[0].box == (1024, 1024, 64) and plan.passes[0].concurrency == 1
    assert "pass 1, exact from level 0" in plan.describe()
    # Two workers get half each: the top levels move to a later pass, both workers busy.
    plan = plan_for(*args, 2 * need - 1, workers=2)
    assert len(plan.passes) >= 2 and plan.passes[0].concurrency == 2
    # One worker with a byte less: a later pass too.
    assert len(plan_for(*args, need - 1, workers=1).passes) >= 2


def test_plan_budget_forces_passes():
    plan = plan_for((1024, 1024, 64), (2, 2, 1), 5, (64, 64, 64), TASK_OVERHEAD + 4 * MiB, workers=1)
    assert len(plan.passes) >= 2
    first, second = plan.passes[:2]
    assert second.base == first.levels[-1] and second.base_shape == plan.levels[second.base].shape
    assert second.ratios[0] == tuple(
        a // b for a, b in zip(plan.levels[second.levels[0]].factor, plan.levels[second.base].factor))
    text = plan.describe()
    assert f"pass 2, exact from level {second.base}" in text and "pass 2: reads level" in text


def test_plan_more_workers_more_boxes():
    one = plan_for((512, 512, 64), (2, 2, 1), 2, (32, 32, 32), 8 * TASK_OVERHEAD, workers=1)
    four = plan_for((512, 512, 64), (2, 2, 1), 2, (32, 32, 32), 8 * TASK_OVERHEAD, workers=4)
    assert four.tasks >= 8 > one.tasks
    assert four.passes[0].concurrency == 4


def test_plan_workers_share_the_budget():
    """A box that needs more than memory / workers runs with fewer tasks at once."""
    levels = make_levels((256, 256, 64), [(2, 2, 2)] * 2, (128, 128, 64))
    plan = check_plan(make_plan(levels, memory=3 * TASK_OVERHEAD, workers=4), 4)
    p = plan.passes[0]
    assert p.memory > plan.memory // 4 and p.concurrency == plan.memory // p.memory < 4


def test_plan_read_unit_grows_boxes_along_planes():
    levels = make_levels((256, 256, 32), [(2, 2, 1)] * 2, (32, 32, 8))
    plan = check_plan(make_plan(levels, memory=TASK_OVERHEAD + 64 * MiB, workers=2, read_unit=(256, 256, 1)), 2)
    assert plan.passes[0].box[:2] == (256, 256)


@pytest.mark.parametrize("memory", [1, 1000, TASK_OVERHEAD], ids=["1B", "1kB", "overhead"])
def test_plan_budget_too_small(memory):
    levels = make_levels((512, 512, 64), [(2, 2, 1)] * 3, (64, 64, 64))
    with pytest.raises(ValueError, match=r"^`memory` of .* is too small"):
        make_plan(levels, memory=memory)


def test_plan_budget_a_few_bytes_short():
    """When budget and need round to the same MiB, the message gives bytes (no "144 MiB needs 144 MiB")."""
    levels = make_levels((64, 64, 8), [(2, 2, 1)], (8, 8, 8))
    with pytest.raises(ValueError, match=r"^`memory` of (\d+) bytes is too small: .* needs (\d+) bytes") as err:
        make_plan(levels, memory=TASK_OVERHEAD)
    have, need = re.findall(r"(\d+) bytes", str(err.value))
    assert int(need) > int(have) == TASK_OVERHEAD


@pytest.mark.parametrize("memory", [0, -5])
def test_plan_budget_not_positive(memory):
    with pytest.raises(ValueError, match="`memory` must be positive"):
        make_plan(make_levels((8, 8, 8), [(2, 2, 2)], (8, 8, 8)), memory=memory)


def test_plan_level_zero_only():
    plan = check_plan(make_plan(make_levels((40, 30, 5), [], (16, 16, 4)), memory=TASK_OVERHEAD + MiB))
    assert [p.levels for p in plan.passes] == [(0,)] and plan.passes[0].ratios == ((1, 1, 1),)


def test_plan_json_round_trip():
    levels = make_levels((97, 61, 13), [(2, 2, 1)] * 4, (8, 8, 4), (16, 16, 8))
    plan = make_plan(levels, memory=TASK_OVERHEAD + 100_000, workers=2, channels=2, itemsize=2)
    assert len(plan.passes) >= 2
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert again.describe() == plan.describe()
    assert [again.passes[1].box_bounds(i) for i in range(len(plan.passes[1]))] == [
        plan.passes[1].box_bounds(i) for i in range(len(plan.passes[1]))]


# ---------------------------------------------------------------------------
# auto_factors, format_bytes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("res,n,want", [
    ((4, 4, 40), 5, [(2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)]),
    ((8, 8, 8), 3, [(2, 2, 2)] * 3),
    ((4, 4, 30), 5, [(2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)]),
    ((40, 4, 4), 2, [(1, 2, 2), (1, 2, 2)]),
    ((4, 4, 8), 2, [(2, 2, 1), (2, 2, 2)]),
], ids=["4-4-40", "8-8-8", "4-4-30", "x-coarse", "4-4-8"])
def test_auto_factors(res, n, want):
    assert auto_factors(res, n) == want


@given(st.tuples(*[st.floats(0.5, 200)] * 3), st.integers(1, 10))
@settings(max_examples=40, deadline=None)
def test_auto_factors_converge(res, n):
    factors = auto_factors(res, n)
    assert len(factors) == n and all(set(f) <= {1, 2} and max(f) == 2 for f in factors)
    cur = list(res)
    for f in factors:
        before = max(cur) / min(cur)
        cur = [r * k for r, k in zip(cur, f)]
        assert max(cur) / min(cur) <= max(before, 2.0) + 1e-9  # anisotropy never grows past 2


@pytest.mark.parametrize("module", ["mipmaker.plan", "mipmaker.formats.sharding"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1536, 3 * MiB, 5 << 40)] == [
        "0 B", "1023 B", "1.5 KiB", "3.0 MiB", "5.0 TiB"]


# ---------------------------------------------------------------------------
# Property: any shape, factors, chunks, shards, budget
# ---------------------------------------------------------------------------

xyz = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * 3)  # noqa: E731


@given(shape=xyz(1, 300), factor=xyz(1, 3), n=st.integers(1, 5), chunk=xyz(1, 64), mult=xyz(1, 4),
       sharded=st.booleans(), log_extra=st.integers(8, 30), workers=st.integers(1, 4),
       itemsize=st.sampled_from([1, 2, 8]), channels=st.sampled_from([1, 3]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_plan_property(shape, factor, n, chunk, mult, sharded, log_extra, workers, itemsize, channels):
    shard = tuple(c * m for c, m in zip(chunk, mult)) if sharded else None
    levels = make_levels(shape, [factor] * n, chunk, shard)
    try:
        plan = make_plan(levels, memory=TASK_OVERHEAD + (1 << log_extra), workers=workers, itemsize=itemsize,
                         channels=channels)
    except ValueError as exc:
        assert "`memory`" in str(exc) and "too small" in str(exc)
        assume(False)
    check_plan(plan, workers)
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
