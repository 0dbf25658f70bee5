"""The companion trainer: reads the build job's output folder and trains a classifier on it.

    python -m train.run --data_dir OUT --model_dir RUN        # train (defaults: the sample build)
    python -m train.evaluate --data_dir OUT --model_dir RUN   # top-1/5, per-class, shot groups
    python -m train.experiments.weight_decay --data_dir OUT   # Adam + L2 vs AdamW, as a figure

Modules: `config` (flags -> frozen dataclass), `data` (the tf.data reader), `models`, `losses`
(weighted cross-entropy, L2 penalty), `optim` (optimizers, weight-decay exclusion, schedules),
`metrics` (evaluation math in numpy, reading TensorBoard scalars back), `run`, `evaluate`.
Nothing here does work at import time.
"""

import os

# Before anything imports TensorFlow: keep its C++ start-up chatter (oneDNN, CUDA probing) out of
# the logs. setdefault, so a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
