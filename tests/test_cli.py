"""The command line, in process: `mipmaker build`, `info`, `preview`, `demo`, errors and help."""

import json
import os
import sys

import numpy as np
import pytest

import buildkit as bk
from mipmaker.build import build
from mipmaker.cli import main

SMALL = ["--factor", "2,2,1", "--levels", "2", "--chunk", "8,8,4", "--quiet"]
# SMALL in several boxes (unsharded, a budget a few kB above the per-task overhead)
BOXES = [*SMALL, "--shard", "none", "--memory", str(bk.task_overhead() + 8000), "--workers", "1"]


@pytest.fixture
def vol_npy(tmp_path):
    vol = bk.image()
    np.save(tmp_path / "v.npy", vol)
    return vol, str(tmp_path / "v.npy")


def run(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr); argparse's exits are returned too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, needle):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mipmaker: error: "), err
    assert needle in lines[0], err


# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-zarr-0.4", "precomputed"], ids=["omezarr", "omezarr04", "pc"])
def test_build(capsys, tmp_path, vol_npy, fmt):
    vol, src = vol_npy
    code, out, err = run(capsys, "build", src, tmp_path / "out", "--format", fmt, *SMALL)
    assert code == 0 and out == ""
    assert err.startswith(f"built 2 levels into {tmp_path / 'out'}") and "resumed" not in err
    bk.assert_levels(tmp_path / "out", fmt, bk.expected_levels(vol, (2, 2, 1), 2, "mean"))


def test_build_default_options(capsys, tmp_path, vol_npy):
    """No --shard / --levels / --factor: auto shard, levels until one chunk, factors from resolution."""
    vol, src = vol_npy
    code, _, err = run(capsys, "build", src, tmp_path / "out", "--resolution", "4,4,40", "--chunk", "16,16,16",
                       "--quiet")
    assert code == 0, err
    ms = json.loads((tmp_path / "out" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [
        [40.0, 4.0, 4.0], [40.0, 8.0, 8.0], [40.0, 16.0, 16.0]]
    level0 = json.loads((tmp_path / "out" / "0" / "zarr.json").read_text())
    assert level0["codecs"][0]["name"] == "sharding_indexed"


def test_build_dry_run(capsys, tmp_path, vol_npy):
    _, src = vol_npy
    memory = bk.task_overhead() + 2000
    code, out, err = run(capsys, "build", src, tmp_path / "out", "--factor", "2,2,1", "--levels", "4", "--chunk",
                         "4,4,4", "--shard", "none", "--memory", memory, "--workers", "1", "--dry-run")
    assert code == 0 and not (tmp_path / "out").exists()
    plan = build(src, tmp_path / "x", factor=(2, 2, 1), levels=4, chunk=(4, 4, 4), shard="none", memory=memory,
                 workers=1, dry_run=True).plan
    for text in ("level  shape (x,y,z)", "37,29,11", "19,15,11", "3,2,11", "16,16,1", "copy of the source",
                 "pass 1, exact from level 0", "pass 1: reads level 0", "pass 2: reads level", "per task",
                 f"tasks: {plan.tasks}", "memory budget", "source: ", "(ome-zarr, zstd)"):
        assert text in out, text
    assert out.count("\npass ") == len(plan.passes)


def test_build_resume_message(capsys, tmp_path, vol_npy, monkeypatch):
    from mipmaker.build import Build

    _, src = vol_npy
    argv = ["build", src, tmp_path / "out", *BOXES]
    assert build(src, tmp_path / "x", factor=(2, 2, 1), levels=2, chunk=(8, 8, 4), shard="none",
                 memory=int(BOXES[-3]), workers=1, dry_run=True).plan.tasks > 3
    real = Build.run_task
    calls = []

    def crash(self, *a, **kw):
        calls.append(a)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(Build, "run_task", crash)
    code, _, err = run(capsys, *argv)
    assert code == 130 and "run the same command again to resume" in err
    monkeypatch.undo()
    code, _, err = run(capsys, *argv)
    assert code == 0 and "(resumed: 3 boxes were done)" in err


def _bad_cases(tmp_path):
    np.save(tmp_path / "u8.npy", bk.image())
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    for name, key in (("badinfo", "info"), ("badzarr", "zarr.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / key).write_text("{oops")


BAD = [
    pytest.param(["missing.npy", "out"], "no such file or folder", id="missing"),
    pytest.param(["notes.txt", "out"], "unknown file type", id="unknown-type"),
    pytest.param(["u8.npy", "full"], "exists and is not a mipmaker build", id="not-a-build"),
    pytest.param(["u8.npy", "u8.npy"], "`dest`", id="dest-is-source"),
    pytest.param(["u8.npy", "out", "--chunk", "8,8,4", "--shard", "12,8,4"], "must be a multiple of `chunk`",
                 id="shard-not-multiple"),
    pytest.param(["u8.npy", "out", "--format", "ome-zarr-0.4", "--shard", "256,256,128"], "`shard` needs zarr v3",
                 id="shard-v04"),
    pytest.param(["u8.npy", "out", "--format", "precomputed", "--encoding", "compressed_segmentation"],
                 "needs uint32 or uint64", id="cseg-u8"),
    pytest.param(["u8.npy", "out", "--memory", "1MB"], "`memory` of 976.6 KiB is too small", id="memory-small"),
    pytest.param(["u8.npy", "out", "--memory", "lots"], "`memory` must look like", id="memory-text"),
    pytest.param(["u8.npy", "out", "--levels", "17"], "`levels` must be at most 16", id="levels-17"),
    pytest.param(["u8.npy", "out", "--axes", "xyq"], "`axes`", id="axes"),
    pytest.param(["badinfo", "out"], "`info` is not valid JSON", id="corrupt-info"),
    pytest.param(["badzarr", "out"], "`zarr.json` is not valid JSON", id="corrupt-zarr-json"),
]


@pytest.mark.parametrize("args,needle", BAD)
def test_build_errors_are_one_line(capsys, tmp_path, monkeypatch, args, needle):
    _bad_cases(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = bk.tree(tmp_path)
    code, out, err = run(capsys, "build", *args, "--quiet")
    assert_one_line_error(code, err, needle)
    bk.assert_same_tree(bk.tree(tmp_path), before)


@pytest.mark.parametrize("args,needle", [
    pytest.param(["--format", "n5"], "argument --format: invalid choice: 'n5'", id="format"),
    pytest.param(["--chunk", "0,8,4"], "argument --chunk: expected three positive numbers", id="chunk-0"),
    pytest.param(["--chunk", "8,8"], "argument --chunk: expected three positive numbers", id="chunk-2"),
    pytest.param(["--factor", "2,-2,1"], "argument --factor: expected three positive numbers", id="factor-neg"),
    pytest.param(["--shard", "16,x,8"], "argument --shard: expected X,Y,Z numbers", id="shard-text"),
    pytest.param(["--shard", "16,16"], "argument --shard: expected three positive numbers", id="shard-2"),
    pytest.param(["--levels", "0"], "argument --levels: expected a positive integer", id="levels-0"),
    pytest.param(["--workers", "-1"], "argument --workers: expected a positive integer", id="workers-neg"),
    pytest.param(["--factor", "2,2,1", "--resolution", "4,4,40"], "not allowed with argument", id="exclusive"),
])
def test_build_usage_errors(capsys, tmp_path, vol_npy, args, needle):
    """argparse rejects malformed options before anything runs: usage, then one error line."""
    _, src = vol_npy
    code, _, err = run(capsys, "build", src, tmp_path / "out", *args)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("mipmaker build: error: ") and needle in err
    assert not (tmp_path / "out").exists()


def test_build_rerun_with_other_options_refused(capsys, tmp_path, vol_npy, monkeypatch):
    from mipmaker.build import Build

    _, src = vol_npy
    argv = ["build", src, tmp_path / "out", *BOXES]
    monkeypatch.setattr(Build, "run_task", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert run(capsys, *argv)[0] == 130
    monkeypatch.undo()
    before = bk.tree(tmp_path / "out")
    code, _, err = run(capsys, *argv, "--levels", "1")
    assert_one_line_error(code, err, "holds a different mipmaker build")
    bk.assert_same_tree(bk.tree(tmp_path / "out"), before)


# ---------------------------------------------------------------------------
# info, preview, demo, help
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pyramids(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyramids")
    np.save(root / "em.npy", bk.image())
    np.save(root / "seg.npy", bk.labels())
    for fmt in ("ome-zarr", "ome-zarr-0.4", "precomputed"):
        build(root / "em.npy", root / f"em-{fmt}", format=fmt, levels=2, factor=(2, 2, 1), chunk=(8, 8, 4),
              resolution=(4, 4, 40), progress=False)
    build(root / "seg.npy", root / "seg", format="precomputed", levels=2, factor=(2, 2, 1), chunk=(8, 8, 4),
          shard=(16, 16, 8), encoding="compressed_segmentation", progress=False)
    return root


@pytest.mark.parametrize("name,head,extra", [
    ("em-ome-zarr", "ome-zarr, uint8, 1 channel(s), 3 level(s)", "OME-NGFF 0.5, axes zyx, type mean"),
    ("em-ome-zarr-0.4", "ome-zarr-0.4, uint8, 1 channel(s), 3 level(s)", "OME-NGFF 0.4, axes zyx, type mean"),
    ("em-precomputed", "precomputed, uint8, 1 channel(s), 3 level(s)", "type: image, encoding: raw, sharded: False"),
    ("seg", "precomputed, uint64, 1 channel(s), 3 level(s)",
     "type: segmentation, encoding: compressed_segmentation, sharded: True"),
    ("em.npy", "npy, uint8, 1 channel(s), 1 level(s)", "37,29,11"),
], ids=["omezarr", "omezarr04", "pc", "pc-seg", "npy"])
def test_info(capsys, pyramids, name, head, extra):
    code, out, err = run(capsys, "info", pyramids / name)
    assert code == 0, err
    assert out.splitlines()[0] == f"{pyramids / name}: {head}" and extra in out
    if name != "em.npy":
        for shape in ("37,29,11", "19,15,11", "10,8,11"):
            assert shape in out
        assert "built by mipmaker" in out and "level 2: factor 4,4,1, exact, from level 0" in out
    if name.startswith("em-"):
        assert "16,16,40" in out  # level 2 resolution


def test_info_missing(capsys, tmp_path):
    code, _, err = run(capsys, "info", tmp_path / "nothing")
    assert_one_line_error(code, err, "no such file or folder")


@pytest.mark.parametrize("name,labels", [("em-ome-zarr", False), ("em-precomputed", False), ("seg", True)],
                         ids=["omezarr", "pc", "pc-seg"])
def test_preview(capsys, tmp_path, pyramids, name, labels):
    from PIL import Image

    out_png = tmp_path / "p.png"
    code, out, err = run(capsys, "preview", pyramids / name, "--out", out_png, "--z", 5)
    assert code == 0 and out.strip() == f"wrote {out_png}", err
    img = np.asarray(Image.open(out_png))
    # One tile per level, each scaled up by an integer to the height of level 0 (29 rows), 4 px apart.
    widths = [37 * 1, 19 * (29 // 15), 10 * (29 // 8)]
    assert img.shape == (29, sum(w + 4 for w in widths), 3)
    assert img[:, :37].any()
    if labels:  # pseudo-colour: not grey
        assert (img[..., 0] != img[..., 1]).any()


def test_preview_bad_z(capsys, tmp_path, pyramids):
    code, _, err = run(capsys, "preview", pyramids / "em-ome-zarr", "--out", tmp_path / "p.png", "--z", 11)
    assert_one_line_error(code, err, "`z` must be in [0, 11)")
    assert not (tmp_path / "p.png").exists()


def test_demo(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--out", out_dir, "--shape", "64,64,8", "--levels", "2", "--threads", 1)
    assert code == 0, err
    for name in ("em.ome.zarr", "labels.ome.zarr", "montage.png", "em.npy", "labels.npy"):
        assert (out_dir / name).exists(), name
    assert "montage.png" in out
    from PIL import Image

    assert Image.open(out_dir / "montage.png").size[1] == 2 * 64  # em above labels
    for name, method in (("em", "mean"), ("labels", "mode")):
        vol = np.load(out_dir / f"{name}.npy")
        bk.assert_levels(out_dir / f"{name}.ome.zarr", "ome-zarr", bk.expected_levels(vol, (2, 2, 1), 2, method))


@pytest.mark.parametrize("argv", [["build", "--help"], ["--help"]], ids=["build", "main"])
def test_help_has_examples(capsys, argv):
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "examples:" in out and "mipmaker build " in out
    if argv[0] == "build":
        for option in ("--format", "--levels", "--factor", "--shard", "--memory", "--dry-run", "--resolution"):
            assert option in out
        assert "resumes" in out


def test_version(capsys):
    import mipmaker

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"mipmaker {mipmaker.__version__}"


def test_console_script_exists():
    script = os.path.join(os.path.dirname(sys.executable), "mipmaker")
    if not os.path.exists(script):
        pytest.skip("no `mipmaker` console script next to this interpreter (not installed with pip)")
    assert os.access(script, os.X_OK)
