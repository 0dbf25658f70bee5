"""Flags of `train.run` and `train.evaluate`, parsed once into frozen dataclasses.

`parse_train_args(argv)` resolves every default that depends on another flag (image size and
batch size per model, the optimizer implied by the regularisation, the weight-decay coefficient,
mixed precision and XLA when a GPU is visible) and fails at start-up on contradictions, so the
rest of the trainer never looks at a flag again. `TrainConfig.to_json()` is what `run` saves as
`config.json` in the run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Optional, Sequence

from schemas import layout

DEFAULT_DATA_DIR = layout.SAMPLE_BUILD_DIR  # where `python -m beam_jobs.build` writes the sample
DEFAULT_MODEL_DIR = "runs/sample"
CONFIG_FILE = "config.json"

MODELS = ("small_cnn", "inception_resnet_v2")
OPTIMIZERS = ("adamw", "adam", "sgd")
REGULARIZATIONS = ("decoupled", "coupled_l2", "none")
SCHEDULES = ("cosine", "exponential", "constant")
CLASS_WEIGHTINGS = ("precomputed", "none")

# Per-model defaults. small_cnn is sized so that the bundled sample trains in a few minutes on
# two CPU cores; inception_resnet_v2 keeps the original script's 299 px and batch 60.
MODEL_DEFAULTS = {
    "small_cnn": dict(image_size=64, batch_size=32, epochs=40, learning_rate=3e-3),
    "inception_resnet_v2": dict(image_size=299, batch_size=60, epochs=30, learning_rate=1e-3),
}
SGD_LEARNING_RATE = 0.05
# Weight-decay coefficients. The parameterisations differ: coupled L2 adds wd * ||w||^2 / 2 to
# the loss (4e-5 is the original slim setting); Keras' decoupled decay subtracts lr * wd * w per
# step, so its coefficient is ~lr-scaled and much larger (0.05 as in common AdamW recipes).
WEIGHT_DECAY_DEFAULTS = {("adamw", "decoupled"): 0.05, ("adam", "coupled_l2"): 4e-5,
                         ("sgd", "decoupled"): 1e-4, ("sgd", "coupled_l2"): 1e-4}
# The coefficient used for the logged `loss/l2_penalty` when the run does not add one to its
# loss, so that runs with different regularisation log comparable numbers.
REPORTED_L2_COEFFICIENT = 4e-5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; see `_train_parser` for the meaning of each."""

    data_dir: str = DEFAULT_DATA_DIR
    model_dir: str = DEFAULT_MODEL_DIR
    model: str = "small_cnn"
    weights: str = "none"  # none | imagenet | path to a no-top .h5 (inception_resnet_v2 only)
    freeze_backbone: bool = False
    image_size: int = 64
    batch_size: int = 32  # global, split over replicas
    epochs: int = 40
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    warmup_epochs: float = 1.0
    decay_epochs: float = 2.0  # exponential schedule: multiply by decay_rate every decay_epochs
    decay_rate: float = 0.8
    regularization: str = "decoupled"
    weight_decay: float = 0.05
    class_weighting: str = "precomputed"
    label_smoothing: float = 0.0
    shuffle_buffer: int = 10_000
    min_crop_area: float = 0.08
    checkpoint_every: int = 100  # steps
    keep_checkpoints: int = 3
    log_every: int = 10  # steps
    num_summary_images: int = 6
    seed: int = 0
    mixed_precision: bool = False
    xla: bool = False

    @property
    def l2_coefficient(self) -> float:
        """Coefficient of the logged L2 penalty (and of the loss term under coupled_l2)."""
        if self.regularization == "coupled_l2":
            return self.weight_decay
        return REPORTED_L2_COEFFICIENT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls(**json.loads(text))


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    data_dir: str = DEFAULT_DATA_DIR
    model_dir: str = DEFAULT_MODEL_DIR
    split: str = "val"
    batch_size: int = 64
    source: str = "auto"  # auto (final model, else latest checkpoint) | final | checkpoint


class ConfigError(ValueError):
    """Contradictory or invalid flags; raised before any work starts."""


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.run", description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="build job output folder")
    p.add_argument("--model_dir", default=DEFAULT_MODEL_DIR,
                   help="run directory: checkpoints, TensorBoard logs, config, final model")
    p.add_argument("--model", choices=MODELS, default="small_cnn")
    p.add_argument("--weights", default=None,
                   help="inception_resnet_v2 only: none | imagenet | path to a no-top .h5")
    p.add_argument("--freeze_backbone", action="store_true",
                   help="inception_resnet_v2 only: train the new head alone")
    p.add_argument("--image_size", type=int, help="default: 64 (small_cnn), 299 (IRv2)")
    p.add_argument("--batch_size", type=int, help="global batch; default 32 (small_cnn), 60 (IRv2)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="default: adamw, or adam with --regularization coupled_l2/none")
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    p.add_argument("--lr_schedule", choices=SCHEDULES, default="cosine",
                   help="cosine with linear warm-up, or the original's exponential decay")
    p.add_argument("--warmup_epochs", type=float, help="cosine only; default 1")
    p.add_argument("--decay_epochs", type=float, help="exponential only; default 2")
    p.add_argument("--decay_rate", type=float, help="exponential only; default 0.8")
    p.add_argument("--regularization", choices=REGULARIZATIONS, default="decoupled",
                   help="decoupled weight decay (AdamW/SGDW), the original's coupled L2 in the "
                        "loss, or none; biases and BatchNorm parameters are never decayed")
    p.add_argument("--weight_decay", type=float,
                   help="default: 0.05 (adamw), 4e-5 (adam + coupled_l2), 1e-4 (sgd)")
    p.add_argument("--class_weighting", choices=CLASS_WEIGHTINGS, default="precomputed",
                   help="precomputed: class_weights.txt, renormalised to mean 1 per sample")
    p.add_argument("--label_smoothing", type=float, default=0.0)
    p.add_argument("--shuffle_buffer", type=int, default=10_000, help="in records")
    p.add_argument("--min_crop_area", type=float, default=0.08,
                   help="smallest random-resized-crop area, as a fraction of the image")
    p.add_argument("--checkpoint_every", type=int, default=100, help="steps")
    p.add_argument("--keep_checkpoints", type=int, default=3)
    p.add_argument("--log_every", type=int, default=10, help="steps between scalar summaries")
    p.add_argument("--num_summary_images", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed_precision", action=argparse.BooleanOptionalAction, default=None,
                   help="float16 compute; default on when a GPU is visible")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="jit-compile the train step; default on when a GPU is visible")
    return p


def _gpu_visible() -> bool:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return bool(tf.config.list_physical_devices("GPU"))


def parse_train_args(argv: Optional[Sequence[str]] = None, *,
                     gpu_visible: Optional[bool] = None) -> TrainConfig:
    """Parses and resolves `train.run` flags; raises ConfigError on contradictions."""
    args = _train_parser().parse_args(argv)
    return resolve(vars(args), gpu_visible=gpu_visible)


def make_train_config(*, gpu_visible: Optional[bool] = None, **flags) -> TrainConfig:
    """A resolved TrainConfig from flag values given as keyword arguments (code and tests).

    Flags not given take the command line's defaults; flag-dependent ones are resolved as there.
    """
    defaults = vars(_train_parser().parse_args([]))
    unknown = sorted(set(flags) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown flags: {unknown}")
    return resolve({**defaults, **flags}, gpu_visible=gpu_visible)


def resolve(flags: dict, *, gpu_visible: Optional[bool] = None) -> TrainConfig:
    """Fills flag-dependent defaults (None values) and checks the combination."""
    f = dict(flags)
    model_defaults = MODEL_DEFAULTS[f["model"]]
    errors = []

    if f["model"] != "inception_resnet_v2":
        if f.get("weights") not in (None, "none"):
            errors.append(f"--weights {f['weights']} needs --model inception_resnet_v2")
        if f.get("freeze_backbone"):
            errors.append("--freeze_backbone needs --model inception_resnet_v2")
    f["weights"] = f.get("weights") or "none"
    if f.get("freeze_backbone") and f["weights"] == "none":
        errors.append("--freeze_backbone with --weights none would train a head on random features")

    reg = f["regularization"]
    if f.get("optimizer") is None:
        f["optimizer"] = "adamw" if reg == "decoupled" else "adam"
    opt = f["optimizer"]
    if opt == "adamw" and reg != "decoupled":
        errors.append(f"--optimizer adamw is decoupled weight decay by definition; with "
                      f"--regularization {reg} use --optimizer adam")
    if opt == "adam" and reg == "decoupled":
        errors.append("--optimizer adam with --regularization decoupled is AdamW: use "
                      "--optimizer adamw")
    if f.get("weight_decay") is None:
        f["weight_decay"] = WEIGHT_DECAY_DEFAULTS.get((opt, reg), 0.0)  # 0 for none and errors
    elif reg == "none" and f["weight_decay"] != 0:
        errors.append("--weight_decay given with --regularization none")

    sched = f["lr_schedule"]
    if sched != "cosine" and f.get("warmup_epochs") is not None:
        errors.append("--warmup_epochs applies to --lr_schedule cosine only")
    if sched != "exponential" and (f.get("decay_epochs") is not None
                                   or f.get("decay_rate") is not None):
        errors.append("--decay_epochs/--decay_rate apply to --lr_schedule exponential only")
    f["warmup_epochs"] = 1.0 if f.get("warmup_epochs") is None else f["warmup_epochs"]
    f["decay_epochs"] = 2.0 if f.get("decay_epochs") is None else f["decay_epochs"]
    f["decay_rate"] = 0.8 if f.get("decay_rate") is None else f["decay_rate"]

    for key in ("image_size", "batch_size", "epochs"):
        if f.get(key) is None:
            f[key] = model_defaults[key]
    if f.get("learning_rate") is None:
        f["learning_rate"] = (SGD_LEARNING_RATE if opt == "sgd"
                              else model_defaults["learning_rate"])

    for key in ("image_size", "batch_size", "epochs", "checkpoint_every", "log_every",
                "keep_checkpoints"):
        if f[key] <= 0:
            errors.append(f"--{key} must be > 0, got {f[key]}")
    if f["model"] == "inception_resnet_v2" and f["image_size"] < 75:
        errors.append("inception_resnet_v2 needs --image_size >= 75")
    if not 0.0 <= f["label_smoothing"] < 1.0:
        errors.append(f"--label_smoothing must be in [0, 1), got {f['label_smoothing']}")
    if not 0.0 < f["min_crop_area"] <= 1.0:
        errors.append(f"--min_crop_area must be in (0, 1], got {f['min_crop_area']}")
    if f["learning_rate"] <= 0 or f["weight_decay"] < 0:
        errors.append("--learning_rate must be > 0 and --weight_decay >= 0")
    if errors:
        raise ConfigError("invalid flags:\n  " + "\n  ".join(errors))

    if f.get("mixed_precision") is None or f.get("xla") is None:
        gpu = _gpu_visible() if gpu_visible is None else gpu_visible
        f["mixed_precision"] = gpu if f.get("mixed_precision") is None else f["mixed_precision"]
        f["xla"] = gpu if f.get("xla") is None else f["xla"]
    return TrainConfig(**f)


def parse_eval_args(argv: Optional[Sequence[str]] = None) -> EvalConfig:
    p = argparse.ArgumentParser(prog="python -m train.evaluate",
                                description="Evaluate a trained run on one split.")
    p.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--model_dir", default=DEFAULT_MODEL_DIR)
    p.add_argument("--split", default="val")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--source", choices=("auto", "final", "checkpoint"), default="auto",
                   help="auto: final.keras if present, else the latest checkpoint")
    args = p.parse_args(argv)
    if args.batch_size <= 0:
        raise ConfigError(f"--batch_size must be > 0, got {args.batch_size}")
    return EvalConfig(**vars(args))
