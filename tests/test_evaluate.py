"""Evaluation: metrics against hand-computed cases, rankings, errors, a tiny run, notebook 04."""

import json

import numpy as np
import pytest
from notebook_outputs import errors, figures, outputs, text_of

from charlib.inference import evaluate
from charlib.training import checkpoint
from charlib.workflow import pipeline

FILES = (
    "metrics.json",
    "classification_report.json",
    "confusion_matrix.png",
    "class_accuracy.png",
    "misclassified.png",
    "confused_pairs.png",
    "reliability.png",
)

# 7 images of 3 classes (A, B, C); the comments give prediction, confidence, top-2 hit.
PROBS = [
    [0.70, 0.20, 0.10],  # A: A 0.70 right
    [0.20, 0.50, 0.30],  # A: B 0.50 wrong, A ranks last: top-2 miss
    [0.10, 0.85, 0.05],  # B: B 0.85 right
    [0.65, 0.25, 0.10],  # B: A 0.65 wrong, B second: top-2 hit
    [0.05, 0.05, 0.90],  # C: C 0.90 right
    [0.10, 0.65, 0.25],  # C: B 0.65 wrong, C second: top-2 hit
    [0.20, 0.25, 0.55],  # C: C 0.55 right
]
LABELS = [0, 0, 1, 1, 2, 2, 2]


@pytest.fixture
def hand():
    return evaluate.predictions(PROBS, LABELS, (65, 66, 67))


def test_metrics_by_hand(hand):
    m = evaluate.metrics(hand, top_k=2)
    # predicted counts per true class: A [1, 1, 0], B [1, 1, 0], C [0, 1, 2]
    precision = [1 / 2, 1 / 3, 2 / 2]
    recall = [1 / 2, 1 / 2, 2 / 3]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall, strict=True)]  # 0.5, 0.4, 0.8
    support = np.array([2, 2, 3])
    assert m["n_images"] == 7 and m["n_classes"] == 3 and m["top_k"] == 2
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["top_k_accuracy"] == pytest.approx(6 / 7)
    assert m["f1_macro"] == pytest.approx(np.mean(f1)) == pytest.approx(17 / 30)
    assert m["f1_weighted"] == pytest.approx(support @ f1 / 7) == pytest.approx(0.6)
    assert m["precision_macro"] == pytest.approx(np.mean(precision))
    assert m["precision_weighted"] == pytest.approx(support @ precision / 7)
    assert m["recall_weighted"] == pytest.approx(4 / 7)
    # 15 bins of 1/15: (0.467, 0.533] 0.50 wrong; (0.533, 0.6] 0.55 right;
    # (0.6, 0.667] 0.65, 0.65 both wrong; (0.667, 0.733] 0.70 right; 0.85 and 0.90 right alone
    gaps = [1 * 0.50, 1 * 0.45, 2 * 0.65, 1 * 0.30, 1 * 0.15, 1 * 0.10]
    assert m["ece"] == pytest.approx(sum(gaps) / 7, abs=1e-6)
    assert m["accuracy"] == pytest.approx(
        sum(r["support"] * r["accuracy"] for r in m["per_class"]) / 7
    )
    a, b, c = m["per_class"]
    assert (a["code"], a["char"], a["support"]) == (65, "A", 2)
    assert b["precision"] == pytest.approx(1 / 3) and b["f1"] == pytest.approx(0.4)
    assert c["accuracy"] == c["recall"] == pytest.approx(2 / 3)
    assert json.loads(json.dumps(m)) == m  # plain JSON values only
    assert evaluate.metrics(hand)["top_k_accuracy"] == 1.0  # top-5 of 3 classes


def test_confusion_report_and_calibration_by_hand(hand):
    counts = evaluate.confusion(hand, normalize=False)
    assert counts.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 2]]
    np.testing.assert_allclose(
        evaluate.confusion(hand), [[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 1 / 3, 2 / 3]]
    )
    report = evaluate.classification_report(hand)
    assert report["B (66)"]["precision"] == pytest.approx(1 / 3)
    assert report["C (67)"]["support"] == 3
    assert report["accuracy"] == pytest.approx(4 / 7)
    assert report["macro avg"]["f1-score"] == pytest.approx(17 / 30)
    cal = evaluate.calibration(hand, bins=5)
    # bins of 0.2: (0.4, 0.6] holds 0.50 wrong, 0.55 right; (0.6, 0.8] 0.70 right, 0.65 and
    # 0.65 wrong; (0.8, 1] 0.85 and 0.90 right
    assert cal["count"] == [0, 0, 2, 3, 2]
    assert cal["accuracy"][:2] == [None, None]
    assert cal["accuracy"][2:] == pytest.approx([1 / 2, 1 / 3, 1])
    assert cal["confidence"][2:] == pytest.approx([0.525, 2 / 3, 0.875])
    assert cal["ece"] == pytest.approx((2 * 0.025 + 3 * 1 / 3 + 2 * 0.125) / 7, abs=1e-6)


def test_worst_classes_and_confused_pairs_order():
    # 4 classes of 4 images; mistakes: A->B x3, C->D x1, D->C x2 (with confidences 0.6, 0.9)
    true = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    guess = [1, 1, 1, 0, 1, 1, 1, 1, 3, 2, 2, 2, 2, 2, 3, 3]
    conf = [0.5, 0.9, 0.7, 0.8, *[0.9] * 8, 0.6, 0.9, 0.9, 0.9]
    probs = np.full((16, 4), 0.0)
    for i, (g, c) in enumerate(zip(guess, conf, strict=True)):
        probs[i] = (1 - c) / 3
        probs[i, g] = c
    preds = evaluate.predictions(probs, true, (65, 66, 67, 68))
    worst = evaluate.worst_classes(preds, k=3)
    assert worst["label"].tolist() == ["A (65)", "D (68)", "C (67)"]
    assert worst["accuracy"].tolist() == pytest.approx([0.25, 0.5, 0.75])
    assert worst.loc[0, "mostly_confused_with"] == "B (66)" and worst.loc[0, "share"] == 0.75
    pairs = evaluate.confused_pairs(preds, k=10)
    assert list(zip(pairs["true"], pairs["predicted"], pairs["count"], strict=True)) == [
        ("A (65)", "B (66)", 3),
        ("D (68)", "C (67)", 2),
        ("C (67)", "D (68)", 1),
    ]
    assert pairs.loc[0, "share"] == 0.75
    assert pairs.loc[0, "examples"] == [1, 2, 0]  # most confident mistake first
    assert len(evaluate.confused_pairs(preds, k=1)) == 1


def test_predictions_are_checked():
    with pytest.raises(ValueError, match="probs must be N×3"):
        evaluate.predictions(np.zeros((2, 2)), [0, 1], (65, 66, 67))
    with pytest.raises(ValueError, match="labels must be class indices in 0..2"):
        evaluate.predictions(np.zeros((2, 3)), [0, 3], (65, 66, 67))
    with pytest.raises(ValueError, match="no predictions to evaluate"):
        evaluate.metrics(evaluate.predictions(np.zeros((0, 3)), [], (65, 66, 67)))


def test_class_list_mismatch_names_both():
    with pytest.raises(ValueError) as info:
        evaluate.check_classes((65, 66, 67), (65, 66, 100), run="runs/x", source="data/y (test)")
    message = str(info.value)
    assert "the run runs/x has 3 classes, the data data/y (test) has 3" in message
    assert "only in the run: C (67); only in the data: d (100)" in message
    assert "pass data=" in message


def test_missing_run_folder_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        evaluate.evaluate_run(tmp_path / "nope")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'nope'}: no such run folder; train it first")
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match="no-such-run: no such run folder"):
        evaluate.run_info("no-such-run")  # a bare name is looked up under runs/


def test_evaluate_run_writes_every_file(tiny_run):
    run_dir = tiny_run
    result = evaluate.evaluate_run(run_dir, device="cpu", per_class=2)
    assert result["files"] == list(FILES)
    for name in FILES:
        assert (run_dir / name).stat().st_size > 0, name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["run"] == "tiny" and saved["split"] == "test" and saved["data"] == "synth-small"
    assert saved["checkpoint_epoch"] == 1 and saved["n_images"] == 2 * 95
    assert saved["accuracy"] == result["accuracy"] and len(saved["per_class"]) == 95
    assert saved["calibration"]["ece"] == pytest.approx(saved["ece"])
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert "A (65)" in report and "unknown (999)" in report


def test_predict_split_matches_training_validation(tiny_run):
    run_dir = tiny_run
    summary = checkpoint.load(run_dir / "best.pt")  # best_val_acc as training measured it
    preds = evaluate.predict_split(run_dir, "validation", device="cpu")
    assert preds.source == "synth-small" and preds.run["checkpoint epoch"] == 1
    assert preds.probs.dtype == np.float32 and preds.images.dtype == np.uint8
    np.testing.assert_allclose(preds.probs.sum(axis=1), 1, rtol=1e-5)
    assert evaluate.metrics(preds)["accuracy"] == pytest.approx(summary["best_val_acc"], abs=1e-6)


def test_predict_split_errors(tiny_run, make_dataset, tmp_path):
    run_dir = tiny_run
    other = make_dataset(codes=(65, 66, 100))
    with pytest.raises(
        ValueError, match=r"class lists differ: the run .* has 95 classes, the data"
    ):
        evaluate.predict_split(run_dir, data=other, device="cpu")
    with pytest.raises(ValueError, match="unknown split 'dev'; expected one of train"):
        evaluate.predict_split(run_dir, "dev")
    # an older run that does not record its data
    ckpt = checkpoint.load(run_dir / "best.pt")
    del ckpt["params"]["data"]
    checkpoint.save(tmp_path / "old" / "best.pt", ckpt)
    with pytest.raises(ValueError, match="does not record the data it trained on; pass data="):
        evaluate.predict_split(tmp_path / "old", device="cpu")
    assert len(evaluate.predict_split(tmp_path / "old", data="synth-small", per_class=1)) == 95


@pytest.mark.notebook
def test_notebook_04_smoke(smoke_reports):
    result = smoke_reports["04_evaluate"]
    assert result.ok
    outs = outputs(result.executed)
    assert not errors(outs)
    # class accuracy, confusion matrix, confused pairs, misclassified gallery and its saliency
    # maps (why the most confident mistakes), reliability
    assert figures(outs) == 6
    text = text_of(outs)
    assert "test accuracy" in text and "top-5" in text and "macro F1" in text
    assert "380 test images of synth-small" in text and "smoke" in text
    run = pipeline.paths.runs_dir() / "smoke"
    for name in FILES:
        assert (run / name).is_file(), name
    assert (result.html.parent / "04_evaluate.html").is_file()
