"""Predictor: a trained run -> top-k characters for a drawing, photo, file or strokes; ONNX export.

    p = Predictor.from_run("runs/default")            # torch on CUDA when present, else CPU
    p.predict("a.png")  -> [{"char": "A", "code": 65, "confidence": 0.93}, ...]

Preprocessing is `preprocess.model_view` (photos and scans cleaned by `ink.find`) then
`augment.eval_input`, the transform training evaluates with. backend="onnx" runs the exported
graph with onnxruntime on the CPU, backend="onnx-int8" its static int8 quantization
(`export.int8`, calibrated on the run's training images).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from charlib.common.codes import IMAGE_SIZE, code_to_char
from charlib.common.env import device_name
from charlib.common.paths import resolve_run
from charlib.inference import export
from charlib.training import checkpoint
from charlib.training.augment import eval_input
from charlib.training.model import forward, predict_probs, prepare
from charlib.vision import ink, preprocess

BACKENDS = ("torch", "onnx", "onnx-int8")  # onnx*: onnxruntime on the CPU
UNSURE_BELOW = 0.5  # top confidence under this is flagged "unsure"
OK, UNSURE, BLANK = "ok", "unsure", "nothing drawn"


class Prediction(list):
    """The top-k guesses [{char, code, confidence}], best first, with a status and the input.

    status is "ok", "unsure" (top confidence under the threshold) or "nothing drawn" (blank
    input: the list is empty). `image` is what the model saw: uint8 size×size, or None.
    """

    def __init__(self, guesses: list[dict], status: str, image: np.ndarray | None):
        super().__init__(guesses)
        self.status, self.image = status, image

    @property
    def blank(self) -> bool:
        return self.status == BLANK

    @property
    def unsure(self) -> bool:
        return self.status == UNSURE

    def __repr__(self) -> str:
        return f"Prediction({list(self)!r}, status={self.status!r})"


class Predictor:
    """A trained model plus its preprocessing; `predict` takes one input, `predict_many` many."""

    def __init__(
        self,
        ckpt: dict,
        *,
        device: str = "auto",
        backend: str = "torch",
        onnx=None,
        tta: bool = False,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if tta and backend != "torch":
            raise ValueError("test-time augmentation runs with backend='torch'")
        self.tta = tta
        self.params, self.classes = ckpt["params"], tuple(int(c) for c in ckpt["classes"])
        self.backend = backend
        self.size = int(self.params.get("data_size") or min(self.params["img_size"], IMAGE_SIZE))
        self.fill = float(self.params.get("ink_fill") or preprocess.DEFAULT_FILL)
        self.stroke_width = float(self.params.get("stroke_width") or ink.DEFAULT_WIDTH)
        onnx_backend = backend.startswith("onnx")
        self.device = torch.device("cpu" if onnx_backend else device_name(device))
        self.meta = {k: ckpt.get(k) for k in ("epoch", "best_val_acc", "val_acc")}
        self.model = None
        if backend == "torch":
            self.model = prepare(checkpoint.model_from_checkpoint(ckpt), self.device)
        self.members = [self.model]  # more for an ensemble (`from_runs`)
        self.session = _onnx_session(onnx) if onnx_backend else None
        self._graph = None

    @classmethod
    def from_run(
        cls, run=None, *, device: str = "auto", backend: str = "torch", tta: bool = False
    ) -> Predictor:
        """Load runs/<run>/best.pt (a name, a path, or None for the latest run); `tta` averages
        over `augment.TTA_VIEWS` (small shifts and scales)."""
        run_dir = resolve_run(run)
        ckpt = checkpoint.load(run_dir / "best.pt")
        onnx = None
        if backend == "onnx":
            onnx = export.current(run_dir, export.FP32) or export.write_onnx(
                ckpt, run_dir / export.FP32
            )
        elif backend == "onnx-int8":
            onnx = export.current(run_dir, export.INT8) or export.int8(run_dir)
        predictor = cls(ckpt, device=device, backend=backend, onnx=onnx, tta=tta)
        predictor.run_dir, predictor.runs = run_dir, [run_dir]
        return predictor

    @classmethod
    def from_runs(cls, runs, *, device: str = "auto", tta: bool = False) -> Predictor:
        """An ensemble: the members' probabilities averaged. Members must share classes and
        input (image size, channels, normalisation); preprocessing is the first member's."""
        dirs = [resolve_run(r) for r in runs]
        ckpts = [checkpoint.load(d / "best.pt") for d in dirs]
        checkpoint.check_members(ckpts, [str(d) for d in dirs])
        predictor = cls(ckpts[0], device=device, tta=tta)
        predictor.members += [
            prepare(checkpoint.model_from_checkpoint(c), predictor.device) for c in ckpts[1:]
        ]
        predictor.run_dir, predictor.runs = dirs[0], dirs
        return predictor

    def input_image(self, x) -> np.ndarray:
        """Any input -> uint8 white-on-black: its ink alone when it is a photo or a scan."""
        return preprocess.to_image(x, stroke_width=self.stroke_width)

    def prepare(self, x) -> np.ndarray | None:
        """Any input -> the uint8 size×size image the model sees; None when nothing is drawn."""
        return preprocess.model_view(
            x, size=self.size, fill=self.fill, stroke_width=self.stroke_width
        )

    def predict(self, x, top_k: int = 5, *, unsure_below: float = UNSURE_BELOW) -> Prediction:
        """Top-k guesses for one input (path, bytes, PIL image, array, Strokes)."""
        return self.predict_many([x], top_k, unsure_below=unsure_below)[0]

    def predict_many(
        self, inputs, top_k: int = 5, *, unsure_below: float = UNSURE_BELOW
    ) -> list[Prediction]:
        """Top-k guesses for each input, run through the model as one batch."""
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        seen = [self.prepare(x) for x in inputs]
        drawn = [img for img in seen if img is not None]
        probs = self.probabilities(np.stack(drawn)) if drawn else np.zeros((0, len(self.classes)))
        return self.results(seen, probs, top_k, unsure_below=unsure_below)

    def results(
        self, seen: list, probs: np.ndarray, top_k: int = 5, *, unsure_below: float = UNSURE_BELOW
    ) -> list[Prediction]:
        """Prepared inputs (None when blank) and the drawn ones' probabilities -> Predictions."""
        top_k = min(top_k, len(self.classes))
        out, row = [], 0
        for img in seen:
            if img is None:
                out.append(Prediction([], BLANK, None))
                continue
            p = probs[row]
            row += 1
            best = np.argsort(-p, kind="stable")[:top_k]
            guesses = [
                {
                    "char": code_to_char(self.classes[i]),
                    "code": self.classes[i],
                    "confidence": float(p[i]),
                }
                for i in best
            ]
            out.append(Prediction(guesses, OK if p[best[0]] >= unsure_below else UNSURE, img))
        return out

    def model_input(self, stack: np.ndarray) -> torch.Tensor:
        """uint8 N×size×size -> the normalised float model input, on this predictor's device."""
        return eval_input(
            torch.from_numpy(np.ascontiguousarray(stack)).to(self.device), self.params
        )

    @torch.inference_mode()
    def probabilities(self, stack: np.ndarray) -> np.ndarray:
        """Softmax probabilities (float32 N×classes) for prepared uint8 N×size×size images."""
        if self.tta or len(self.members) > 1:
            return predict_probs(
                self.members, stack, self.params, self.device, tta=self.tta
            ).numpy()
        x = self.model_input(stack)
        if self.session is not None:
            logits = torch.from_numpy(self.session.run(None, {"input": x.numpy()})[0])
        elif self.device.type == "cuda" and len(x) == 1:
            logits = self._replay(x)
        else:
            logits = forward(self.model, x, self.device).float()
        return torch.softmax(logits, 1).cpu().numpy()

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        """One drawing on CUDA: replay a captured CUDA graph of the fp32 forward pass.

        A ResNet-18 on one 28 px image is ~60 tiny kernels; launching them one by one costs
        more than running them, a graph replay launches them all at once.
        """
        if self._graph is None:
            self._static_in = x.clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up (cuDNN picks its algorithms) outside the capture
                    self.model(self._static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._static_out = self.model(self._static_in)
        self._static_in.copy_(x)
        self._graph.replay()
        return self._static_out.clone()


def _onnx_session(path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError(
            "backend='onnx' needs onnxruntime; pip install onnxruntime, or use backend='torch'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = min(4, os.cpu_count() or 1)
    # Idle threads sleep instead of spinning: spinning burnt ~60 ms of CPU per served
    # prediction on 2 cores, CPU that preprocessing and other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
