"""Command line: ``mipmaker demo`` (more commands arrive with ``mipmaker build``)."""

from __future__ import annotations

import argparse
import sys

from . import __version__

EXAMPLES = """examples:
  mipmaker demo                      # synthetic EM image + labels -> ./mipmaker-demo/
  mipmaker demo --out /tmp/d --levels 5 --threads 1
"""


def _shape(text):
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z integers, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers X,Y,Z, got {text!r}")
    return parts


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
        prog="mipmaker",
        description="Exact, fast image pyramids for connectomics volumes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mipmaker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="build mean and mode pyramids of a synthetic EM volume and write a montage",
        description="Generate an EM-like uint8 image with uint64 labels, build a mean pyramid "
        "of the image and an exact mode pyramid of the labels in memory, print the throughput, "
        "and write the levels (.npy) and montage.png.",
    )
    demo.add_argument("--out", default="mipmaker-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--shape", type=_shape, default=(384, 384, 48), help="volume X,Y,Z (default: 384,384,48)")
    demo.add_argument("--levels", type=_positive, default=4, help="levels of (2,2,1) (default: %(default)s)")
    demo.add_argument("--threads", type=_positive, default=None, help="worker threads (default: all cores)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.out, shape=args.shape, levels=args.levels, threads=args.threads)
    except ImportError as exc:
        print(f"mipmaker: error: {exc}; install the extra with `pip install 'mipmaker[demo]'`", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        print(f"mipmaker: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
