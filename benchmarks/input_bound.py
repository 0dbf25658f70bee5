"""Is training input-bound? Train steps/s with the real reader vs the same batch from memory.

    python -m benchmarks.input_bound                         # the sample build, or generated shards
    python -m benchmarks.input_bound --data_dir OUT --model small_cnn --image_size 64

Runs the trainer's own train step (`train.run.make_train_step`) on the trainer's model, in one
process, alternately fed by (a) `train.data.make_dataset` (read, parse, crop-decode, augment,
batch) and (b) that dataset's first batch cached and repeated (`take(1).cache().repeat()`), so
(b) costs no input work. Prints one JSON line: steps/s of each and reader_over_memory = a / b.
A ratio near 1 means the reader keeps up with the model; the target is >= 0.9. On a CPU the
reader and the model compete for the same cores, so the line also gives the reader's own speed
(no training) and `cpu_sharing_bound` = 1 / (1 + memory steps/s * batch / reader images/s): the
ratio a reader that never stalls the model would reach here. On a GPU the reader has the CPU
alone and that bound is 1.

Without --data_dir it uses the bundled sample's build (outputs/sample_tfrecords), running
`python -m beam_jobs.build` first if that folder holds no complete build.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

from beam_jobs import build
from schemas import layout

log = logging.getLogger(__name__)

SAMPLE_BUILD = layout.SAMPLE_BUILD_DIR
# Untimed steps at the start of every timed window: while another input was being timed, this
# iterator's background threads filled their prefetch buffers, a head start to use up first.
DRAIN_STEPS = 5


def steps_per_second(train_step, iterator, steps: int) -> float:
    for _ in range(DRAIN_STEPS):
        outputs = train_step(next(iterator))
    float(outputs["examples"])
    start = time.perf_counter()
    for _ in range(steps):
        outputs = train_step(next(iterator))
    float(outputs["examples"])  # wait for the last step to finish
    return steps / (time.perf_counter() - start)


def reader_images_per_second(iterator, batches: int, batch_size: int) -> float:
    for _ in range(DRAIN_STEPS):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def measure(data_dir: str, model_name: str, image_size: int, batch_size: int, steps: int,
            rounds: int) -> dict:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from train import config as config_lib  # pylint: disable=import-outside-toplevel
    from train import data, models, optim, run  # pylint: disable=import-outside-toplevel

    config = config_lib.make_train_config(data_dir=data_dir, model=model_name,
                                          image_size=image_size, batch_size=batch_size,
                                          mixed_precision=False, xla=False)
    info = data.load_build_info(data_dir)
    strategy = tf.distribute.get_strategy()
    model = models.build_model(config.model, info.num_classes, config.image_size)
    optimizer = optim.make_optimizer(config, config.learning_rate, model.trainable_variables)
    train_step = run.make_train_step(model, optimizer, config, strategy, info.num_classes)
    reader = data.ReaderConfig(image_size=config.image_size, batch_size=config.batch_size,
                               shuffle_buffer=config.shuffle_buffer)
    real = data.make_dataset(data_dir, "train", reader, training=True, repeat=True, seed=0)
    memory = real.take(1).cache().repeat()
    iterators = {"reader": iter(real), "memory": iter(memory)}
    for iterator in iterators.values():  # compile, fill the shuffle buffer, warm caches
        steps_per_second(train_step, iterator, 1)
    rates = {name: [] for name in iterators}
    alone = []
    for _ in range(rounds):  # alternate, so that load from other processes hits all alike
        for name, iterator in iterators.items():
            rates[name].append(steps_per_second(train_step, iterator, steps))
        alone.append(reader_images_per_second(iterators["reader"], steps, batch_size))
    reader_rate, memory_rate = (float(np.median(rates[name])) for name in ("reader", "memory"))
    alone_rate = float(np.median(alone))
    # If the reader never stalls the model and the two only share the CPU cores, a step costs
    # the model's time plus the reader's CPU time for one batch: the best ratio on this machine.
    cpu_sharing_bound = 1.0 / (1.0 + memory_rate * batch_size / alone_rate)
    return {"benchmark": "input_bound", "model": model_name, "image_size": image_size,
            "batch_size": batch_size, "data_dir": data_dir,
            "reader_steps_per_s": round(reader_rate, 3),
            "memory_steps_per_s": round(memory_rate, 3),
            "reader_images_per_s": round(reader_rate * batch_size, 1),
            "reader_over_memory": round(reader_rate / memory_rate, 3),
            "reader_alone_images_per_s": round(alone_rate, 1),
            "cpu_sharing_bound": round(cpu_sharing_bound, 3)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m benchmarks.input_bound",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", help=f"default: {SAMPLE_BUILD} (built if missing)")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40, help="timed steps per round and input")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = SAMPLE_BUILD
        if not os.path.exists(os.path.join(data_dir, layout.BUILD_INFO)):
            log.info("No --data_dir and no sample build: building the sample first")
            if build.main(["--runner", "FnApiRunner"]) != 0:
                return 1
    result = measure(data_dir, args.model, args.image_size, args.batch_size, args.steps,
                     args.rounds)
    sys.stdout.write(json.dumps(result) + "\n")  # the result line, machine-readable
    return 0


if __name__ == "__main__":
    sys.exit(main())
