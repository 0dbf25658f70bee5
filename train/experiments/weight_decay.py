"""Adam + coupled L2 vs AdamW on the same model: the L2 penalty and weight norm against steps.

    python -m train.experiments.weight_decay --data_dir outputs/sample_tfrecords \
        --out docs/weight_decay.png

Trains the small CNN (bias-free convs followed by BatchNorm, like InceptionResNetV2, so its conv
kernels are scale-invariant) twice with the real trainer (`train.run.train`), same data, seed,
learning rate and steps, once with (a) Adam + the original's coupled L2 (4e-5 in the loss) and
once with (b) AdamW (decoupled decay), then reads `loss/l2_penalty` and `weights/global_norm` back
from the two runs' TensorBoard logs and plots them. See docs/weight_decay.md for why (a) grows.

The constant learning rate is the default small-CNN rate; AdamW's coefficient is larger than a
long run would use because its pull acts on a time scale of 1 / (2 * lr * wd) steps, which must
fit in a short demo.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from typing import Optional, Sequence

from train import config as config_lib
from train import metrics

log = logging.getLogger(__name__)

TAGS = ("loss/l2_penalty", "weights/global_norm")  # plotted
VAL_TAG = "val/top1"  # reported: both arms must still learn
ARMS = {  # label -> the flags that differ
    "Adam + coupled L2 (wd 4e-5)": dict(optimizer="adam", regularization="coupled_l2",
                                        weight_decay=4e-5),
    "AdamW (decoupled)": dict(optimizer="adamw", regularization="decoupled"),
}


def run_pair(data_dir: str, work_dir: str, *, epochs: int, learning_rate: float,
             adamw_weight_decay: float, image_size: int, batch_size: int,
             log_every: int = 5, seed: int = 0) -> dict[str, dict[str, list]]:
    """Trains both arms; returns {arm label: {tag: [(step, value), ...]}}."""
    from train import run  # pylint: disable=import-outside-toplevel  (imports TF)

    curves = {}
    for i, (label, arm) in enumerate(ARMS.items()):
        config = config_lib.make_train_config(
            data_dir=data_dir, model_dir=os.path.join(work_dir, f"arm{i}"), model="small_cnn",
            epochs=epochs, learning_rate=learning_rate, lr_schedule="constant",
            image_size=image_size, batch_size=batch_size, log_every=log_every,
            checkpoint_every=10**9, num_summary_images=0, seed=seed, mixed_precision=False,
            xla=False, **{"weight_decay": adamw_weight_decay, **arm})
        _start_fresh(config.model_dir)
        log.info("Training arm %r in %s", label, config.model_dir)
        run.train(config)
        scalars = metrics.read_scalars(os.path.join(config.model_dir, run.LOG_DIR))
        curves[label] = {tag: scalars[tag] for tag in TAGS + (VAL_TAG,) if tag in scalars}
    return curves


def _start_fresh(model_dir: str) -> None:
    """Removes an earlier run of this experiment (train.run would resume it instead)."""
    if not os.path.exists(model_dir):
        return
    if not os.path.exists(os.path.join(model_dir, config_lib.CONFIG_FILE)):
        raise FileExistsError(f"{model_dir} exists and is not a training run: not replacing it")
    log.info("Replacing the earlier run in %s", model_dir)
    shutil.rmtree(model_dir)


def growth(points: list) -> float:
    """Last value / first value of a curve."""
    return points[-1][1] / points[0][1]


def plot(curves: dict, out_path: str, title: str) -> None:
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for label, arm in curves.items():
        for ax, tag in zip(axes, TAGS):
            steps, values = zip(*arm[tag])
            ax.plot(steps, values, label=label)
    axes[0].set_title("L2 penalty 4e-5 * sum ||kernel||^2 / 2")
    axes[1].set_title("global weight norm")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    p = argparse.ArgumentParser(prog="python -m train.experiments.weight_decay",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=config_lib.DEFAULT_DATA_DIR)
    p.add_argument("--out", default="docs/weight_decay.png")
    p.add_argument("--work_dir", default="runs/weight_decay", help="the two runs go here")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--learning_rate", type=float, default=3e-3)
    p.add_argument("--adamw_weight_decay", type=float, default=0.5)
    p.add_argument("--image_size", type=int, default=48)
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args(argv)
    curves = run_pair(args.data_dir, args.work_dir, epochs=args.epochs,
                      learning_rate=args.learning_rate,
                      adamw_weight_decay=args.adamw_weight_decay, image_size=args.image_size,
                      batch_size=args.batch_size)
    steps = curves[next(iter(curves))][TAGS[0]][-1][0]
    plot(curves, args.out, f"small CNN (conv -> BN), {steps} steps, lr {args.learning_rate:g} "
                           f"constant; AdamW wd {args.adamw_weight_decay:g}")
    summary = {label: {**{tag: {"first": arm[tag][0][1], "last": arm[tag][-1][1],
                                "growth": growth(arm[tag])} for tag in TAGS},
                       "final_val_top1": arm[VAL_TAG][-1][1] if VAL_TAG in arm else None}
               for label, arm in curves.items()}
    log.info("Wrote %s; the numbers behind it:\n%s", args.out, json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
