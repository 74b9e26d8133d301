"""Command line: ``mipmaker build``, ``info``, ``preview`` and ``demo``."""

from __future__ import annotations

import argparse
import sys

from . import __version__

EXAMPLES = """examples:
  mipmaker demo                                       # synthetic EM volume -> ./mipmaker-demo/
  mipmaker build em.npy em.ome.zarr --resolution 4,4,40
  mipmaker build tiffs/ em.ome.zarr --factor 2,2,1 --levels 5 --memory 4GB
  mipmaker build seg.npy seg/ --format precomputed --labels --encoding compressed_segmentation
  mipmaker build precomputed://gs://bucket/em out.ome.zarr --dry-run
  mipmaker info em.ome.zarr
  mipmaker preview em.ome.zarr --out em.png
"""

BUILD_EXAMPLES = """examples:
  mipmaker build em.npy em.ome.zarr --resolution 4,4,40      # near-isotropic factors, mean
  mipmaker build tiffs/ em.ome.zarr --factor 2,2,1 --levels 5 --memory 4GB
  mipmaker build seg.zarr seg/ --format precomputed --labels --encoding compressed_segmentation
  mipmaker build seg.ome.zarr seg_ds.ome.zarr --method mode --sparse --factor 2,2,2 --dry-run
  mipmaker build /shared/em.npy /shared/em.ome.zarr --dask tcp://scheduler:8786 --workers 64

Factors, resolutions, chunks and shards are x,y,z whatever the storage order.
A build interrupted at any point resumes when the same command is run again
and gives the same bytes as an uninterrupted one.
"""


def _triple(kind=int):
    def parse(text):
        try:
            parts = tuple(kind(p) for p in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected X,Y,Z numbers, got {text!r}") from None
        if len(parts) != 3 or min(parts) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive numbers X,Y,Z, got {text!r}")
        return parts

    return parse


def _shard(text):
    # argparse also passes the string default "auto" through this converter.
    if text.lower() in ("none", "auto"):
        return None if text.lower() == "none" else "auto"
    return _triple()(text)


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mipmaker", description="Exact, fast image pyramids for connectomics volumes.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mipmaker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "build", help="build a chunked multiscale pyramid of a volume on disk",
        description="Build every level of a pyramid from SRC (.npy, TIFF stack or (OME-)TIFF, zarr, "
        "OME-Zarr, N5 or Neuroglancer precomputed; a path or a file://, gs://, s3:// URL) into DEST "
        "(OME-Zarr v0.5 by default), in bounded memory, resumable.",
        epilog=BUILD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("src", help="source volume")
    b.add_argument("dest", help="destination (new, or an unfinished build of the same command)")
    b.add_argument("--format", choices=("ome-zarr", "ome-zarr-0.4", "precomputed"),
                   help="output format (default: ome-zarr; precomputed when DEST is the precomputed SRC, "
                   "which adds the levels in place)")
    b.add_argument("--levels", type=_positive, help="levels above 0 (default: until one chunk)")
    how = b.add_mutually_exclusive_group()
    how.add_argument("--factor", type=_triple(), help="factor per level, x,y,z (e.g. 2,2,1)")
    how.add_argument("--resolution", type=_triple(float),
                     help="voxel size x,y,z in nm; factors make voxels near-isotropic, then halve all axes")
    b.add_argument("--method", default="auto", choices=("auto", "mean", "mode", "median", "min", "max", "stride"),
                   help="auto: mode for labels, mean for images (default)")
    b.add_argument("--sparse", action="store_true", help="0 is background: never chosen/averaged when data exists")
    b.add_argument("--labels", action="store_true", default=None, help="the source is a segmentation")
    b.add_argument("--chunk", type=_triple(), default=(128, 128, 64), help="chunk x,y,z (default: 128,128,64)")
    b.add_argument("--shard", type=_shard, default="auto",
                   help="shard x,y,z, or none (default: about 16 MiB for ome-zarr, none otherwise)")
    b.add_argument("--compression", default="zstd", choices=("zstd", "gzip", "blosc", "none"),
                   help="OME-Zarr chunk compression (default: %(default)s)")
    b.add_argument("--encoding", choices=("raw", "compressed_segmentation"), help="precomputed encoding (default: raw)")
    b.add_argument("--axes", help="storage axes of .npy / plain zarr / N5 sources, e.g. zyx (default: xyz)")
    b.add_argument("--memory", help="memory budget, e.g. 2GB (default: half of available RAM)")
    b.add_argument("--workers", type=_positive, help="boxes at once (default: twice the CPU count)")
    cluster = b.add_mutually_exclusive_group()
    cluster.add_argument("--dask", metavar="ADDRESS",
                         help="run the boxes on the dask.distributed scheduler at ADDRESS, e.g. tcp://host:8786")
    cluster.add_argument("--dask-local", metavar="N", type=_positive,
                         help="run the boxes on a new dask cluster of N worker processes on this machine")
    b.add_argument("--dry-run", action="store_true", help="print the plan and exit; write nothing")
    b.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="levels, shapes, dtype, chunks and metadata of a volume or pyramid")
    i.add_argument("path")
    i.add_argument("--axes", help="storage axes of .npy / plain zarr / N5 sources")

    p = sub.add_parser("preview", help="PNG montage of one z slice across the levels of a pyramid")
    p.add_argument("path")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--z", type=int, help="level-0 z slice (default: the middle)")
    p.add_argument("--labels", action="store_true", default=None, help="pseudo-colour as a segmentation")

    d = sub.add_parser(
        "demo", help="build OME-Zarr pyramids of a synthetic EM volume and write a montage",
        description="Generate an EM-like uint8 image with uint64 labels, build a mean pyramid of the "
        "image and an exact mode pyramid of the labels on disk with `mipmaker build`, and write "
        "montage.png from the levels read back.",
    )
    d.add_argument("--out", default="mipmaker-demo", help="output folder (default: %(default)s)")
    d.add_argument("--shape", type=_triple(), default=(384, 384, 48), help="volume X,Y,Z (default: 384,384,48)")
    d.add_argument("--levels", type=_positive, default=4, help="levels of (2,2,1) (default: %(default)s)")
    d.add_argument("--threads", type=_positive, default=None, help="worker threads (default: all cores)")
    return parser


def _run(args):
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, shape=args.shape, levels=args.levels, threads=args.threads)
    elif args.command == "info":
        from .info import describe

        print(describe(args.path, axes=args.axes))
    elif args.command == "preview":
        from .info import preview

        preview(args.path, args.out, z=args.z, labels=args.labels)
        print(f"wrote {args.out}")
    elif args.command == "build":
        from contextlib import nullcontext

        from .build import build

        on_dask = args.dask is not None or args.dask_local is not None
        if on_dask and not args.dry_run:
            from ._dask import connect

            session = connect(args.dask, args.dask_local)
        else:
            session = nullcontext()
        with session as client:
            state = build(
                args.src, args.dest, format=args.format, levels=args.levels, factor=args.factor,
                resolution=args.resolution, method=args.method, sparse=args.sparse, labels=args.labels,
                chunk=args.chunk, shard=args.shard, compression=args.compression, encoding=args.encoding,
                axes=args.axes, memory=args.memory, workers=args.workers, dry_run=args.dry_run,
                progress=not args.quiet and not args.dry_run, client=client,
            )
        if args.dry_run:
            print(state.describe())
        else:
            voxels = state.plan.levels[0].shape
            n = voxels[0] * voxels[1] * voxels[2]
            note = f" (resumed: {state.tasks_skipped} boxes were done)" if state.tasks_skipped else ""
            if state.resumed and not state.tasks_skipped and not state.tasks_run:
                note = " (already complete)"
            print(f"built {len(state.plan.levels) - 1} levels into {args.dest} in {state.seconds:.2f} s, "
                  f"{n / max(state.seconds, 1e-9) / 1e6:.0f} MVx/s{note}", file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except KeyboardInterrupt:
        print("mipmaker: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except ImportError as exc:
        print(f"mipmaker: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        print(f"mipmaker: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
