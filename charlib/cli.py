"""`python -m charlib ...`: run the notebooks, predict, evaluate, export; fetch or inspect data.

The parser, each command, and the output formats live here; `__main__.py` only calls `main`.
Expected failures print one line (`charlib: error: ...`) and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

from charlib.common.files import atomic_write, write_json
from charlib.common.progress import bar
from charlib.data.sources import SPLITS
from charlib.workflow.pipeline import CELL_TIMEOUT

IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items())
QUICK_PER_CLASS = 20  # images per class for `evaluate --quick` (the seed's test_accuracy.py)
SHOWN = 20  # lines printed for a folder before only the summary


def describe(prediction) -> str:
    """'A (65) 89.3%, H (72) 4.1%, ...' or 'nothing drawn'; unsure ones say so."""
    if prediction.blank:
        return "nothing drawn"
    text = ", ".join(f"{g['char']} ({g['code']}) {g['confidence']:.1%}" for g in prediction)
    return f"{text}  [unsure]" if prediction.unsure else text


def _row(path: Path, prediction=None, error: str = "") -> dict:
    row = {"path": str(path), "status": prediction.status if prediction is not None else error}
    for rank, guess in enumerate(prediction or [], 1):
        row |= {
            f"char_{rank}": guess["char"],
            f"code_{rank}": guess["code"],
            f"confidence_{rank}": round(guess["confidence"], 6),
        }
    return row


def folder_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive, sorted), by the suffixes Pillow reads."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise ValueError(f"{folder}: no image files (png, jpg, bmp, ...) found")
    return found


def _write_results(out: Path, rows: list[dict]) -> None:
    """Rows as JSON, or as CSV (the suffix was checked before predicting)."""
    if out.suffix.lower() == ".json":
        write_json(out, rows)
    else:
        import pandas as pd

        table = pd.DataFrame(rows)
        for column in [c for c in table if c.startswith("code_")]:
            table[column] = table[column].astype("Int64")  # unreadable rows have none
        text = table.to_csv(index=False)
        atomic_write(out, lambda f: f.write(text.encode()))


def _predict(args) -> None:
    """Print the top-k for each image; optionally write a CSV/JSON and a PNG visualisation."""
    from charlib.inference.infer import Predictor

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"{out}: unknown result format; use a .csv or .json file name")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    files = [Path(f) for f in args.image] if args.image else folder_images(Path(args.folder))
    if args.save_viz and len(files) != 1:
        raise ValueError("--save-viz draws one image; pass a single --image")
    for path in files if args.image else []:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    if args.ensemble:
        if args.backend != "torch":
            raise ValueError("--ensemble runs with --backend torch")
        predictor = Predictor.from_runs(args.ensemble, device=args.device, tta=args.tta)
    else:
        predictor = Predictor.from_run(
            args.run, device=args.device, backend=args.backend, tta=args.tta
        )
    rows, lines = [], []
    for path in bar(files, enabled=len(files) > 1, desc="predicting", unit="image"):
        try:
            prediction = predictor.predict(path, top_k=args.top_k)
        except ValueError as e:
            if args.image:  # named files: a bad one is an error, not a row
                raise
            rows.append(_row(path, error=f"unreadable: {str(e).removeprefix(f'{path}: ')}"))
            continue
        rows.append(_row(path, prediction))
        lines.append(f"{path}: {describe(prediction)}")
    print("\n".join(lines[:SHOWN]))
    if args.folder:
        bad = sum(r["status"].startswith("unreadable") for r in rows)
        print(
            f"{len(rows)} image(s), {bad} unreadable"
            + (f", first {SHOWN} shown" * (len(rows) > SHOWN))
        )
    if out is not None:
        _write_results(out, rows)
        print(f"results written to {out}")
    if args.save_viz:
        from charlib.inference.plots import prediction_figure

        # the file as the user sees it (in colour, upright), what the model saw, the top-k
        figure = prediction_figure(files[0], prediction, title=files[0].name)
        target = Path(args.save_viz)
        atomic_write(target, lambda f: figure.savefig(f, format="png", dpi=110))
        print(f"visualisation written to {target}")


def _evaluate(args) -> None:
    """Evaluate a run on a split and print the headline metrics and the files written."""
    from charlib.common.paths import resolve_run
    from charlib.data.sources import split_label
    from charlib.inference.evaluate import evaluate_run

    per_class = QUICK_PER_CLASS if args.quick else args.per_class
    if per_class is not None and per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    if args.ensemble or args.tta:  # a combination of runs: printed, never written into a run
        from charlib.inference.evaluate import metrics as measure
        from charlib.inference.evaluate import predict_split

        runs = args.ensemble or [args.run]
        preds = predict_split(
            runs if args.ensemble else resolve_run(args.run),
            args.split,
            data=args.data,
            device=args.device,
            per_class=per_class,
            tta=args.tta,
        )
        metrics = measure(preds) | {"n_images": len(preds), "data": preds.source}
        what = f"ensemble of {len(runs)}" if args.ensemble else resolve_run(args.run).name
        label = f"{what}{' with TTA' if args.tta else ''}"
    else:
        run_dir = resolve_run(args.run)
        metrics = evaluate_run(
            run_dir, args.split, data=args.data, device=args.device, per_class=per_class
        )
        label = run_dir.name
    named = split_label(metrics.get("data"), args.split)
    print(f"{label} on {named} ({metrics['n_images']:,} images):")
    top = f"top-{metrics['top_k']} accuracy"
    shown = {"accuracy": "accuracy", "top_k_accuracy": top, "f1_macro": "F1 (macro)"}
    shown |= {"f1_weighted": "F1 (weighted)", "ece": "calibration error (ECE)"}
    for key, label in shown.items():
        print(f"  {label:<24} {metrics[key]:.4f}")
    for name in metrics.get("files", []):
        print(f"  wrote {name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _sweep_parser(sub)
    again = sub.add_parser("reproduce", help="retrain a run from its params.json and compare")
    again.add_argument("run", help="the run to reproduce (a name under runs/ or a folder)")
    again.add_argument("--into", default=None, help="the new run (default: <run>-reproduced)")
    again.add_argument("--device", default="cpu", help="cpu (deterministic) or cuda")
    _predict_parser(sub)
    _evaluate_parser(sub)
    export = sub.add_parser("export", help="export a run's model")
    export.add_argument("--run", default=None, help=RUN_HELP)
    export.add_argument("--onnx", action="store_true", required=True, help="ONNX, dynamic batch")
    export.add_argument(
        "--int8", action="store_true", help="static int8, calibrated on the training images"
    )
    export.add_argument("--data", default=None, help="training data for --int8 (default: run's)")
    export.add_argument(
        "--out", default=None, help="file (default: runs/<name>/model.onnx or model-int8.onnx)"
    )
    _data_parser(sub)
    _serve_parser(sub)
    _train_parser(sub)
    _finetune_parser(sub)
    return parser


def _finetune_parser(sub) -> None:
    tune = sub.add_parser(
        "finetune",
        help="adapt a trained run to your saved drawings (data/mine), as a new run",
        description="Start from RUN's weights and train on your examples (saved from the pad "
        "into DATA, one folder per ASCII code) mixed with images replayed from the run's own "
        "training data, into a new run (default runs/<run>-mine). The run itself is unchanged.",
    )
    tune.add_argument("--run", default=None, help=RUN_HELP)
    tune.add_argument("--data", default=None, help="your examples (default: data/mine)")
    tune.add_argument("--into", default=None, help="the new run (default: <run>-mine)")
    tune.add_argument("--epochs", type=int, default=None, help="default: 6")
    tune.add_argument("--replay", type=int, default=None, help="original images per class")
    tune.add_argument(
        "--replay-data", default=None, help="the original data, if the run's record is stale"
    )
    tune.add_argument("--device", default="auto", help="auto, cpu or cuda")
    tune.add_argument("--seed", type=int, default=0)


def _train_parser(sub) -> None:
    from charlib.training import settings

    train = sub.add_parser(
        "train",
        help="train a run without the notebooks (one process, or several under torchrun)",
        description="Train a model on DATA into runs/<run>. Under `torchrun --nproc_per_node N "
        "-m charlib train ...` the N processes train one model together (DistributedDataParallel"
        "; each keeps its shard of the training set on its device; rank 0 writes the run).",
    )
    train.add_argument("--data", default="synth", help="folder, zip or preset (default: synth)")
    train.add_argument("--run-name", default=None, help="the run (default: <data>-YYYYMMDD-HHMM)")
    settings.add_flags(train)  # one flag per training setting (charlib/training/settings.py)
    train.add_argument(
        "--per-class", type=int, default=None, help="at most N training images per class"
    )
    train.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    train.add_argument("--overwrite", action="store_true", help="start the run over")


def _serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="the REST API and the web drawing pad (FastAPI)")
    serve.add_argument("--run", default=None, help=RUN_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="address (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    serve.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        help="auto: torch on a GPU, else int8 ONNX (fp32 ONNX when the training images that "
        "calibrate int8 are missing)",
    )
    serve.add_argument(
        "--save-to",
        nargs="?",
        const="",
        default=None,
        metavar="FOLDER",
        help="let the page save corrected drawings into FOLDER (alone: data/mine); off by default",
    )


RUN_HELP = (
    "run name under runs/, a folder, or 'reference' (default: the latest trained run, else the "
    "shipped reference model)"
)


def _run_parser(sub) -> None:
    run = sub.add_parser("run", help="run the numbered notebooks and export HTML reports")
    run.add_argument(
        "--data",
        default=None,
        help="dataset folder/zip, 'synth' (default), 'synth-small', 'alphanum' or 'emnist' "
        "(downloaded once)",
    )
    run.add_argument(
        "--smoke", action="store_true", help="tiny data and 1 epoch in runs/smoke, a quick check"
    )
    run.add_argument("--only", nargs="+", metavar="NN", help="notebooks to run, e.g. 01 02")
    run.add_argument("--out", default=None, help="reports folder (default: reports/)")
    run.add_argument(
        "--run-name",
        default=None,
        help="runs/<name> that 03-05 share (default: a new one, e.g. synth-20261129-0710)",
    )
    run.add_argument("--epochs", type=int, default=None, help="training epochs (default: recipe's)")
    run.add_argument(
        "--time-budget",
        default=None,
        metavar="SECONDS",
        help="training time limit in seconds, 'auto' (330 on a CPU, none on a GPU: the default) "
        "or 'none'",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace a trained run of the same --run-name"
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        default=CELL_TIMEOUT,
        metavar="SECONDS",
        help="stop a notebook whose cell runs longer (default: %(default)g; 0: never)",
    )
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter (VALUE parsed as a Python literal)",
    )


def _sweep_parser(sub) -> None:
    sweep = sub.add_parser(
        "sweep", help="train and evaluate every combination of a grid, then compare them"
    )
    sweep.add_argument("name", help="the sweep: runs/<name>/<combination>/, reports/<name>/")
    sweep.add_argument(
        "-g",
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a grid axis: a notebook 03/04 parameter and its values (repeat for more axes)",
    )
    sweep.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter every combination shares",
    )
    sweep.add_argument("--smoke", action="store_true", help="tiny data and 1 epoch per run")
    sweep.add_argument(
        "--max", type=int, default=None, help="allow more combinations than the default limit"
    )
    sweep.add_argument("--out", default=None, help="reports folder (default: reports/)")
    sweep.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS")
    sweep.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run each combination as a task on a Dask cluster: a scheduler's address "
        "(tcp://host:8786) or local[:N] (N worker processes here); see docs/clusters.md",
    )


def _predict_parser(sub) -> None:
    predict = sub.add_parser("predict", help="top-k characters for images (files or a folder)")
    given = predict.add_mutually_exclusive_group(required=True)
    given.add_argument("--image", nargs="+", metavar="FILE", help="one or more image files")
    given.add_argument("--folder", metavar="DIR", help="every image in a folder (recursive)")
    predict.add_argument("--run", default=None, help=RUN_HELP)
    predict.add_argument(
        "--ensemble", nargs="+", metavar="RUN", help="average these runs (instead of --run)"
    )
    predict.add_argument("--tta", action="store_true", help="average small shifts and scales")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda")
    predict.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    predict.add_argument("--out", default=None, help="write results to a .csv or .json file")
    predict.add_argument(
        "--save-viz", default=None, metavar="PATH", help="PNG of the image and its top-k bars"
    )


def _evaluate_parser(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="metrics and figures for a run on a split")
    evaluate.add_argument("--run", default=None, help=RUN_HELP)
    evaluate.add_argument(
        "--ensemble",
        nargs="+",
        metavar="RUN",
        help="average these runs (metrics printed, not written into a run)",
    )
    evaluate.add_argument("--tta", action="store_true", help="average small shifts and scales")
    evaluate.add_argument("--split", default="test", choices=SPLITS)
    evaluate.add_argument("--data", default=None, help="dataset (default: what the run used)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--per-class", type=int, default=None, help="images per class")
    evaluate.add_argument(
        "--quick", action="store_true", help="20 images per class, like the seed's test_accuracy"
    )


def _data_parser(sub) -> None:
    data = sub.add_parser("data", help="download, generate or inspect datasets")
    what = data.add_subparsers(dest="what", required=True)
    alpha = what.add_parser(
        "alphanum", help="download AlphaNum from Hugging Face into data/alphanum"
    )
    alpha.add_argument("--dest", default=None)
    alpha.add_argument(
        "--endpoint", default=None, help="Hugging Face endpoint (default $HF_ENDPOINT)"
    )
    emnist = what.add_parser(
        "emnist", help="download EMNIST ByClass from NIST into data/emnist (AlphaNum layout)"
    )
    emnist.add_argument("--dest", default=None)
    emnist.add_argument(
        "--url", default=None, help="archive URL (default $CHARLIB_EMNIST_URL, else NIST's)"
    )
    emnist.add_argument(
        "--keep-archive", action="store_true", help="keep NIST's gzip.zip after converting it"
    )
    synth = what.add_parser("synth", help="generate the built-in synthetic dataset")
    synth.add_argument("--preset", default="synth", choices=["synth", "synth-small"])
    synth.add_argument("--seed", type=int, default=0)
    info = what.add_parser("info", help="load a dataset and print its load report")
    info.add_argument("source", help="dataset folder/zip, 'synth' or 'synth-small'")


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _params(items: list[str]) -> dict:
    """-p NAME=VALUE items -> {NAME: literal VALUE}."""
    given = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad --param {item!r}; expected NAME=VALUE, e.g. -p EPOCHS=3")
        given[name] = _literal(value)
    return given


def _sweep(args) -> None:
    """Every combination trained and evaluated in turn (side by side on several GPUs, as tasks
    on a Dask cluster with --cluster), a line each, then the comparison report."""
    from charlib.data import loading
    from charlib.workflow import cluster, sweep

    axes = dict(sweep.parse_axis(item, _literal) for item in args.grid)
    fixed = _params(args.param)
    limit = args.max or sweep.MAX_COMBINATIONS
    sweep.check(args.name, axes, fixed, limit=limit)
    source = loading.smoke_source(fixed.get("DATA", "synth"), args.smoke)
    # Made here for this machine's workers (before they start, not by each at once); a remote
    # cluster's workers make built-in data themselves, and each worker is asked about a folder.
    here = args.cluster is None or cluster.local_workers(args.cluster) is not None
    if here and (args.cluster is None or str(source) in cluster.builtin_data()):
        loading.check_source(source)
    reports = Path(args.out) if args.out else None
    rows = sweep.run_sweep(
        args.name,
        axes,
        fixed,
        smoke=args.smoke,
        reports=reports,
        limit=limit,
        cell_timeout=args.cell_timeout or None,
        cluster=args.cluster,
    )
    failed = [r for r in rows if r["status"] == "failed"]
    print(f"{len(rows)} combination(s), {len(failed)} failed; compared in {args.name}'s reports")
    if failed:
        raise ValueError(f"{len(failed)} combination(s) failed; see runs/{args.name}/sweep.json")


def _reproduce(args) -> None:
    """Retrain a run into a new one and print both runs' test metrics side by side."""
    from charlib.workflow.reproduce import reproduce

    table = reproduce(args.run, args.into, device=args.device)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    same = (table["difference"].abs() < 1e-9).all()
    print("identical metrics" if same else "metrics differ (see the difference column)")


def _run(args) -> None:
    """Check everything, then run the notebooks: a bad name, value, data source or run name
    stops here in one line, before the first notebook starts. Notebook 06 joins when there is
    more than one run to compare."""
    from charlib.common import paths
    from charlib.training import settings
    from charlib.workflow import pipeline

    given = _params(args.param)
    chosen = pipeline.select(pipeline.discover(), args.only)  # a typo fails now, not later
    pipeline.check_parameters(given, chosen)
    numbers = {p.name[:2] for p in chosen}
    params = {"SMOKE": args.smoke, "INTERACTIVE": False}  # the pad shows scripted strokes
    flags = {"DATA": args.data, "EPOCHS": args.epochs}
    params |= {k: v for k, v in flags.items() if v is not None}
    if args.time_budget is not None:
        params["TIME_BUDGET"] = settings.parse_budget(args.time_budget)
    params |= {"OVERWRITE": True} if args.overwrite else {}
    params |= given
    params["RUN_NAME"] = _run_name(args, params, numbers)
    _check_data(params, numbers)
    if not args.only and len(_trained_runs() | {params["RUN_NAME"]}) < 2:
        chosen = [p for p in chosen if p.name[:2] != "06"]  # nothing to compare yet
    start = time.perf_counter()
    timeout = args.cell_timeout or None  # 0: no limit
    reports = Path(args.out) if args.out else paths.reports_dir()
    only = [p.stem for p in chosen]
    results = pipeline.run_all(params, only=only, reports=reports, cell_timeout=timeout)
    print(
        f"{len(results)} notebook(s) ran in {pipeline.duration(time.perf_counter() - start)}; "
        f"open {results[-1].html.parent / 'index.html'} (every run: {reports / 'index.html'})"
    )


def _trained_runs() -> set[str]:
    from charlib.common import paths

    return {p.parent.name for p in paths.runs_dir().glob("*/params.json")}


def _run_name(args, params: dict, numbers: set[str]) -> str:
    """The run 03-05 share: runs/smoke for --smoke; the name given; else a new one when 03
    trains (never an earlier run's folder), or the latest trained run for 04/05."""
    from charlib.common import paths
    from charlib.training import settings, train

    named = args.run_name or params.get("RUN_NAME")
    if args.smoke and named:
        raise ValueError("--smoke trains and evaluates its own run (runs/smoke); drop the name")
    if args.smoke:
        named = paths.SMOKE_RUN
    elif not named and "03" in numbers:
        named = paths.new_run_name(Path(str(params.get("DATA", "synth"))).stem)
    elif not named:
        return paths.resolve_run(None).name if numbers & {"04", "05"} else "unnamed"
    if "03" in numbers:
        settings.from_notebook(params).params()  # checked before any notebook starts
        train.check_target(
            paths.resolve_run(named, trained=False),
            resume=bool(params.get("RESUME")),
            overwrite=bool(params.get("OVERWRITE")),
            smoke=args.smoke,
        )
    elif numbers & {"04", "05"}:
        paths.resolve_run(named)  # it must hold a trained model
    return named


def _check_data(params: dict, numbers: set[str]) -> None:
    """The data source exists (AlphaNum downloaded, built-in sets generated) before 01 starts."""
    from charlib.data import loading

    if "DATA" not in params and not numbers & {"01", "02", "03"}:
        return
    # Generated or downloaded here, with a progress bar, rather than silently inside a notebook.
    loading.check_source(loading.smoke_source(params.get("DATA", "synth"), params["SMOKE"]))


def _data(args) -> None:
    if args.what == "alphanum":
        from charlib.data.download import download_alphanum

        print(f"AlphaNum is in {download_alphanum(args.dest, endpoint=args.endpoint)}")
    elif args.what == "emnist":
        from charlib.data import emnist

        dest = emnist.ensure(args.dest, url=args.url, keep_archive=args.keep_archive)
        print(f"EMNIST ByClass is in {dest}")
    elif args.what == "synth":
        from charlib.data import synth

        print(f"synthetic data is in {synth.ensure(args.preset, seed=args.seed)}")
    else:
        from charlib.data.loading import load_dataset

        ds = load_dataset(args.source)
        print(ds.report)
        for row in ds.report.table().itertuples():
            print(f"  {row.action} {row.split}/{row.path}: {row.reason}")


def _train(args) -> None:
    """Train one run; under torchrun every process runs this and rank 0 alone prints and writes."""
    from charlib.common import paths
    from charlib.data.loading import load_dataset
    from charlib.training import distributed, settings, train

    chosen = settings.from_args(args)
    group = distributed.join(chosen.device)
    name = args.run_name or paths.new_run_name(Path(str(args.data)).stem)
    run_dir = paths.resolve_run(distributed.from_main(group, name), trained=False)
    if not group.main:
        distributed.from_main(group, None)  # rank 0 loads (and caches) the data first
    ds = load_dataset(args.data, seed=args.seed, progress=group.main)
    if group.main:
        distributed.from_main(group, None)
    part = ds.train.subset(args.per_class, args.seed) if args.per_class else ds.train
    summary = train.fit(
        part, ds.validation, chosen, run_dir=run_dir, resume=args.resume,
        overwrite=args.overwrite, progress=group.main, data_source=str(args.data),
    )  # fmt: skip
    if group.main:
        print(
            f"{run_dir}: {summary['epochs_run']} epochs, best validation "
            f"{summary['best_val_acc']:.1%} (epoch {summary['best_epoch']}), "
            f"{summary['images_per_s']:,.0f} images/s"
        )


def _finetune(args) -> None:
    from charlib.training import finetune

    knobs = {"epochs": args.epochs, "replay": args.replay}
    summary = finetune.finetune(
        args.run, args.data, name=args.into, replay_data=args.replay_data, device=args.device,
        seed=args.seed, **{k: v for k, v in knobs.items() if v is not None},
    )  # fmt: skip
    print(
        f"{summary['run_dir']}: fine-tuned in {summary['epochs_run']} epochs, best validation "
        f"{summary['best_val_acc']:.1%}; use it with --run {summary['run_dir'].name}"
    )


def _serve(args) -> None:
    from charlib.apps import serve

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535, got {args.port}")
    save_to = args.save_to
    if save_to == "":  # --save-to alone: the project's data/mine
        from charlib.data import mine

        save_to = mine.default_dir()
    serve.serve(args.run, host=args.host, port=args.port, backend=args.backend, save_to=save_to)


def _export(args) -> None:
    from charlib.inference import export

    if args.int8:
        print(f"int8 ONNX model written to {export.int8(args.run, args.out, data=args.data)}")
    else:
        print(f"ONNX model written to {export.onnx(args.run, args.out)}")


COMMANDS = {
    "run": _run,
    "sweep": _sweep,
    "reproduce": _reproduce,
    "data": _data,
    "predict": _predict,
    "evaluate": _evaluate,
    "export": _export,
    "serve": _serve,
    "train": _train,
    "finetune": _finetune,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; expected failures print one line and return a non-zero status."""
    args = build_parser().parse_args(argv)
    from charlib.data.download import DownloadError
    from charlib.workflow.pipeline import NotebookFailed

    try:
        COMMANDS[args.command](args)
    except (ValueError, DownloadError, NotebookFailed, OSError) as e:
        print(f"charlib: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("charlib: interrupted", file=sys.stderr)
        return 130
    return 0
