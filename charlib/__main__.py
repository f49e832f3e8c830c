"""`python -m charlib ...`: run the notebooks, fetch or make data, inspect a dataset."""

from __future__ import annotations

import argparse
import sys
import time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the numbered notebooks and export HTML reports")
    run.add_argument("--data", default="synth", help="dataset folder/zip, 'synth' or 'synth-small'")
    run.add_argument("--smoke", action="store_true", help="tiny data and epochs, for a quick check")
    run.add_argument("--only", nargs="+", metavar="NN", help="notebooks to run, e.g. 01 02")
    run.add_argument("--out", default=None, help="report folder (default: reports/)")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter (VALUE parsed as a Python literal)",
    )

    data = sub.add_parser("data", help="download, generate or inspect datasets")
    what = data.add_subparsers(dest="what", required=True)
    alpha = what.add_parser(
        "alphanum", help="download AlphaNum from Hugging Face into data/alphanum"
    )
    alpha.add_argument("--dest", default=None)
    alpha.add_argument(
        "--endpoint", default=None, help="Hugging Face endpoint (default $HF_ENDPOINT)"
    )
    synth = what.add_parser("synth", help="generate the built-in synthetic dataset")
    synth.add_argument("--preset", default="synth", choices=["synth", "synth-small"])
    synth.add_argument("--seed", type=int, default=0)
    info = what.add_parser("info", help="load a dataset and print its load report")
    info.add_argument("source", help="dataset folder/zip, 'synth' or 'synth-small'")
    return parser


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _run(args) -> None:
    from pathlib import Path

    from charlib import pipeline, synth
    from charlib.data import smoke_source

    params = {"DATA": args.data, "SMOKE": args.smoke}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad --param {item!r}; expected NAME=VALUE, e.g. -p EPOCHS=3")
        params[name] = _literal(value)
    pipeline.select(pipeline.discover(), args.only)  # a typo fails now, not after generating
    source = str(smoke_source(args.data, args.smoke))
    if source in synth.PRESETS:
        # Here, with a progress bar in the terminal, rather than silently inside a notebook.
        synth.ensure(source)
    start = time.perf_counter()
    out = Path(args.out) if args.out else None
    results = pipeline.run_all(params, only=args.only, out_dir=out)
    index = results[-1].html.parent / "index.html"
    print(f"{len(results)} notebook(s) ran in {time.perf_counter() - start:.0f} s; open {index}")


def _data(args) -> None:
    if args.what == "alphanum":
        from charlib.download import download_alphanum

        print(f"AlphaNum is in {download_alphanum(args.dest, endpoint=args.endpoint)}")
    elif args.what == "synth":
        from charlib import synth

        print(f"synthetic data is in {synth.ensure(args.preset, seed=args.seed)}")
    else:
        from charlib.data import load_dataset

        ds = load_dataset(args.source)
        print(ds.report)
        for row in ds.report.table().itertuples():
            print(f"  {row.action} {row.split}/{row.path}: {row.reason}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; expected failures print one line and return a non-zero status."""
    args = _parser().parse_args(argv)
    from charlib.download import DownloadError
    from charlib.pipeline import NotebookFailed

    try:
        _run(args) if args.command == "run" else _data(args)
    except (ValueError, DownloadError, NotebookFailed, OSError) as e:
        print(f"charlib: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("charlib: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
