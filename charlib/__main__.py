"""`python -m charlib ...`: run the notebooks, predict, evaluate, export; fetch or inspect data."""

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
    run.add_argument("--run-name", default="default", help="runs/<name> that 03-05 share")
    run.add_argument("--epochs", type=int, default=None, help="training epochs (default: recipe's)")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter (VALUE parsed as a Python literal)",
    )

    predict = sub.add_parser("predict", help="top-k characters for images (files or a folder)")
    given = predict.add_mutually_exclusive_group(required=True)
    given.add_argument("--image", nargs="+", metavar="FILE", help="one or more image files")
    given.add_argument("--folder", metavar="DIR", help="every image in a folder (recursive)")
    predict.add_argument("--run", default=None, help="run name or folder (default: latest)")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda")
    predict.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    predict.add_argument("--out", default=None, help="write results to a .csv or .json file")
    predict.add_argument(
        "--save-viz", default=None, metavar="PATH", help="PNG of the image and its top-k bars"
    )

    evaluate = sub.add_parser("evaluate", help="metrics and figures for a run on a split")
    evaluate.add_argument("--run", default=None, help="run name or folder (default: latest)")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--data", default=None, help="dataset (default: what the run used)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--per-class", type=int, default=None, help="images per class")
    evaluate.add_argument(
        "--quick", action="store_true", help="20 images per class, like the seed's test_accuracy"
    )

    export = sub.add_parser("export", help="export a run's model")
    export.add_argument("--run", default=None, help="run name or folder (default: latest)")
    export.add_argument("--onnx", action="store_true", required=True, help="ONNX, dynamic batch")
    export.add_argument("--out", default=None, help="file (default: runs/<name>/model.onnx)")

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

    params = {"DATA": args.data, "SMOKE": args.smoke, "RUN_NAME": args.run_name}
    params |= {"INTERACTIVE": False}  # the drawing pad shows scripted strokes in reports
    if args.epochs is not None:
        params["EPOCHS"] = args.epochs
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


def _predict(args) -> None:
    from charlib import cli

    cli.predict(args)


def _evaluate(args) -> None:
    from charlib import cli

    cli.evaluate(args)


def _export(args) -> None:
    from charlib.infer import export_onnx

    print(f"ONNX model written to {export_onnx(args.run, args.out)}")


COMMANDS = {
    "run": _run,
    "data": _data,
    "predict": _predict,
    "evaluate": _evaluate,
    "export": _export,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; expected failures print one line and return a non-zero status."""
    args = _parser().parse_args(argv)
    from charlib.download import DownloadError
    from charlib.pipeline import NotebookFailed

    try:
        COMMANDS[args.command](args)
    except (ValueError, DownloadError, NotebookFailed, OSError) as e:
        print(f"charlib: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("charlib: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
