"""The weight-decay claim of docs/weight_decay.md, on a short real run of the trainer.

    python -m pytest tests/test_weight_decay.py -q

Same model (bias-free convs + BatchNorm), data, seed, learning rate and steps: the L2 penalty of
the conv kernels grows under Adam + coupled L2 and does not under AdamW.
"""

from __future__ import annotations

from tests import shardfixtures
from train.experiments import weight_decay


def test_adam_plus_l2_grows_the_weights_and_adamw_does_not(tmp_path):
    data_dir = tmp_path / "build"
    shardfixtures.write_fixture_build(data_dir, num_classes=4, train_per_class=[28, 16, 12, 8],
                                      val_per_class=2, image_size=(40, 40))
    # A large constant lr makes Adam's random walk visible in 64 steps; AdamW's pull acts over
    # ~1 / (2 lr wd) = 50 steps.
    curves = weight_decay.run_pair(str(data_dir), str(tmp_path / "runs"), epochs=8,
                                   learning_rate=1e-2, adamw_weight_decay=1.0, image_size=32,
                                   batch_size=8, log_every=4)
    adam_l2, adamw = (curves[label] for label in weight_decay.ARMS)
    for tag in weight_decay.TAGS:
        assert adam_l2[tag][0] == adamw[tag][0]  # the same starting weights (seeded)
    adam_penalty = [value for _, value in adam_l2["loss/l2_penalty"]]
    adamw_penalty = [value for _, value in adamw["loss/l2_penalty"]]
    # (a) ends at its maximum, several times where it started; (b) was pulled back down from
    # the early rise that every Adam run has (the first updates all have size ~lr)...
    assert adam_penalty[-1] == max(adam_penalty) > 2 * adam_penalty[0], adam_penalty
    assert adamw_penalty[-1] < 0.8 * max(adamw_penalty), adamw_penalty
    # ...and the gap is wide.
    assert weight_decay.growth(adam_l2["loss/l2_penalty"]) > 2 * weight_decay.growth(
        adamw["loss/l2_penalty"])
    assert (weight_decay.growth(adam_l2["weights/global_norm"])
            > weight_decay.growth(adamw["weights/global_norm"]))
