"""Why the model answered: integrated-gradients saliency maps for a prediction (Captum).

    e = explain.saliency(predictor, strokes)      # the top guess: why; the second: what would
    plots.saliency_figure(e.image, e.maps, e.titles)  # make it that

A map gives each pixel of the image the model saw its share of a score: the top guess's logit
("why A"), or for a later guess the gap between its logit and the top guess's ("what would
make it H": positive where the ink looks more like H than like A). Integrated gradients
(Sundararajan et al., 2017) split the score's change from a blank image (no ink, the baseline)
to the drawing over the pixels, so a map sums to score(drawing) - score(blank) up to `delta`.
Blank paper is the baseline and gets nothing: a map speaks about the ink that is there, not
about strokes that are missing.

An ONNX predictor is explained with its run's torch weights (best.pt, the graph ONNX was
exported from); an ensemble by its members' mean logits; test-time augmentation is left out
(the maps are of the plain view).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients

from charlib.common.codes import code_to_char
from charlib.inference.infer import Prediction
from charlib.training import checkpoint
from charlib.training.augment import model_input

STEPS = 32  # integration steps; completeness holds to a few % of the score at 28 px
BATCH_PIXELS = 256 * 28 * 28  # model-input pixels per forward pass (256 images at 28 px)
_TORCH = weakref.WeakKeyDictionary()  # ONNX predictor -> its torch models, loaded once


@dataclass(frozen=True)
class Explanation:
    """Saliency maps (float32 K×H×W) over `image` (the uint8 H×W the model saw) for `codes`.

    `against[k]` is None for the top guess's own map, else the code whose logit was subtracted
    (the top guess). `delta` is each map's completeness error (Captum's convergence delta).
    A blank drawing has no image and no maps.
    """

    prediction: Prediction
    image: np.ndarray | None
    maps: np.ndarray
    codes: tuple[int, ...]
    against: tuple[int | None, ...]
    delta: np.ndarray

    @property
    def blank(self) -> bool:
        return self.prediction.blank

    @property
    def titles(self) -> list[str]:
        """'A 91% — why A', then 'H 5% — what would make it H' for the later guesses."""
        confidence = {g["code"]: g["confidence"] for g in self.prediction}
        return [
            title(code, other, confidence.get(code))
            for code, other in zip(self.codes, self.against, strict=True)
        ]


def title(code: int, against: int | None, confidence: float | None = None) -> str:
    """A map's title: 'A 91% — why A', or 'H 5% — what would make it H' (against the top)."""
    char = code_to_char(code)
    share = None if confidence is None else f"{100 * confidence:.0f}%"
    head = char if share is None else f"{char} {'<1%' if share == '0%' else share}"
    return f"{head} — {'why' if against is None else 'what would make it'} {char}"


def torch_models(predictor) -> list[torch.nn.Module]:
    """The torch models behind a predictor: its members, or for ONNX its run's best.pt."""
    if predictor.model is not None:
        return predictor.members
    if predictor in _TORCH:
        return _TORCH[predictor]
    run_dir = getattr(predictor, "run_dir", None)
    if run_dir is None or not (run_dir / "best.pt").is_file():
        raise ValueError(
            "explaining an ONNX predictor needs its run's torch weights (best.pt); load it with "
            "Predictor.from_run(run), or use backend='torch'"
        )
    model = checkpoint.model_from_checkpoint(checkpoint.load(run_dir / "best.pt"))
    _TORCH[predictor] = [model]
    return _TORCH[predictor]


def attribute(predictor, images, codes, *, against=None, steps: int = STEPS):
    """Integrated gradients for prepared uint8 images (N×H×W, or one H×W) toward `codes`.

    `codes`: one class code per image; `against`: None, or per image None or a code whose logit
    is subtracted (the map of "code rather than that one"). Returns (maps float32 N×H×W, or
    H×W for one image; delta float32 N, the completeness error of each map).
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer of at least 2, got {steps!r}")
    single = np.ndim(images) == 2
    stack = np.asarray(images)[None] if single else np.asarray(images)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 N×H×W (or one H×W), got {stack.dtype} {stack.shape}"
        )
    codes = [codes] if single else list(codes)
    against = [None] * len(codes) if against is None else [against] if single else list(against)
    if not len(codes) == len(against) == len(stack):
        raise ValueError(f"give one code (and one against) per image: {len(stack)} images")
    weights = _contrasts(predictor.classes, codes, against).to(predictor.device)
    if not len(stack):
        return np.zeros(stack.shape, np.float32), np.zeros(0, np.float32)
    models, params = torch_models(predictor), predictor.params

    def score(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # x: float N×1×H×W in [0, 1]; the run's resize and normalisation are part of the path
        z = torch.stack([m(model_input(x, params)) for m in models]).mean(0)
        return (z.float() * w).sum(1)

    x = torch.from_numpy(stack).to(predictor.device).float().div(255).unsqueeze(1)
    chunk = max(1, BATCH_PIXELS // (params["img_size"] ** 2 * params["channels"]))
    maps, delta = IntegratedGradients(score).attribute(
        x,
        torch.zeros_like(x),  # no ink: model_input of a black image is the model's baseline
        additional_forward_args=(weights,),
        n_steps=steps,
        internal_batch_size=chunk,
        return_convergence_delta=True,
    )
    maps = maps[:, 0].detach().cpu().numpy().astype(np.float32)
    delta = delta.detach().cpu().numpy().astype(np.float32)
    return (maps[0], delta) if single else (maps, delta)


def _contrasts(classes, codes, against) -> torch.Tensor:
    """Per image a weight over the logits: +1 on its code, -1 on the one it is against."""
    index = {int(c): i for i, c in enumerate(classes)}
    weights = torch.zeros(len(codes), len(classes))
    for row, (code, other) in enumerate(zip(codes, against, strict=True)):
        for c, sign in ((code, 1.0), (other, -1.0)):
            if c is None:
                continue
            if int(c) not in index:
                raise ValueError(f"class code {c} is not one of the model's {len(classes)} classes")
            weights[row, index[int(c)]] += sign
    return weights


def of_prediction(predictor, prediction: Prediction, *, top: int = 2, steps: int = STEPS):
    """The Explanation of a Prediction `predictor` made: its `top` guesses' maps, one batch."""
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    if prediction.blank or prediction.image is None:
        empty = np.zeros((0, predictor.size, predictor.size), np.float32)
        return Explanation(prediction, None, empty, (), (), np.zeros(0, np.float32))
    codes = tuple(g["code"] for g in prediction[:top])
    against = (None,) + (codes[0],) * (len(codes) - 1)
    images = np.repeat(prediction.image[None], len(codes), axis=0)
    maps, delta = attribute(predictor, images, codes, against=against, steps=steps)
    return Explanation(prediction, prediction.image, maps, codes, against, delta)


def saliency(predictor, x, *, top: int = 2, steps: int = STEPS) -> Explanation:
    """Predict one input (strokes, photo, file, array) and explain its `top` guesses.

    The first map is why the model gave its top guess; each later one is what would have made
    it that guess instead (its logit minus the top guess's). A blank drawing gives an
    Explanation with `blank` true and no maps.
    """
    prediction = predictor.predict(x, top_k=max(top, 5))
    return of_prediction(predictor, prediction, top=top, steps=steps)


def gallery(explanations, rows) -> dict:
    """`plots.saliency_figure`'s arguments for several Explanations, one row each with its
    label from `rows`; blank drawings (nothing to explain) are left out."""
    shown = [(e, row) for e, row in zip(explanations, rows, strict=True) if not e.blank]
    if not shown:
        return {
            "image": np.zeros((0, 1, 1), np.uint8),
            "maps": np.zeros((0, 0, 1, 1)),
            "titles": [],
        }
    return {
        "image": np.stack([e.image for e, _ in shown]),
        "maps": np.stack([e.maps for e, _ in shown]),
        "titles": [e.titles for e, _ in shown],
        "rows": [row for _, row in shown],
    }


def mistakes(predictor, preds, *, n: int = 8, steps: int = STEPS) -> dict:
    """The `n` most confident mistakes of `evaluate.Predictions`, each with a map toward the
    predicted class and one toward the true class (rather than the predicted one).

    Returns `plots.saliency_figure`'s arguments: image (N×H×W), maps (N×2×H×W), titles, rows
    (no titles or rows when there is no mistake).
    """
    if preds.images is None:
        raise ValueError("these predictions carry no images; use evaluate.predict_split")
    if tuple(preds.classes) != tuple(predictor.classes):
        raise ValueError("the predictions and the predictor have different classes (runs?)")
    wrong = np.flatnonzero(preds.predicted != preds.labels)
    wrong = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:n]
    if not len(wrong):
        size = preds.images.shape[-1]
        return {"image": np.zeros((0, size, size), np.uint8), "maps": np.zeros((0, 2, size, size))}
    guess = [preds.classes[k] for k in preds.predicted[wrong]]
    true = [preds.classes[k] for k in preds.labels[wrong]]
    images = preds.images[wrong]
    maps, _ = attribute(
        predictor,
        np.concatenate([images, images]),
        guess + true,
        against=[None] * len(wrong) + guess,
        steps=steps,
    )
    maps = maps.reshape(2, len(wrong), *images.shape[1:]).transpose(1, 0, 2, 3)
    return {
        "image": images,
        "maps": maps,
        "titles": [
            [f"why {code_to_char(g)}", f"what would make it {code_to_char(t)}"]
            for g, t in zip(guess, true, strict=True)
        ],
        "rows": [
            f"{code_to_char(t)} → {code_to_char(g)} {100 * c:.0f}%"
            for t, g, c in zip(true, guess, preds.confidence[wrong], strict=True)
        ],
    }
