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

Without --data_dir it uses outputs/sample_tfrecords when that build exists, else writes
iNat-like shards (400x300 JPEGs, ~30-40 KB) to a temporary folder with its own small writer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_BUILD = "outputs/sample_tfrecords"


def write_shards(out_dir: str, *, num_classes: int = 10, per_class: int = 40,
                 num_shards: int = 4, size=(400, 300), seed: int = 0) -> None:
    """A complete small build output folder of smooth, photo-sized JPEGs (see schemas/layout)."""
    import io  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel

    from schemas import features, layout  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shards = []
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, layout.shard_name(
        "bench", "train", i, num_shards))) for i in range(num_shards)]
    for n, label in enumerate(labels):
        base = 255 * np.array([(label * 37 % 100) / 100, (label * 61 % 100) / 100, 0.5])
        slope = rng.uniform(-60, 60, size=(2, 3))
        pixels = base + (xx / width)[..., None] * slope[0] + (yy / height)[..., None] * slope[1]
        pixels += rng.normal(0, 8, size=pixels.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG",
                                                                       quality=90)
        writers[n % num_shards].write(features.to_example({
            "image": buffer.getvalue(), "format": features.IMAGE_FORMAT, "height": height,
            "width": width, "label": int(label), "label_text": f"class {label}",
            "supercategory": 0, "source_id": str(n)}))
    for i, writer in enumerate(writers):
        writer.close()
        shards.append(layout.ShardInfo(layout.shard_name("bench", "train", i, num_shards),
                                       len(labels[i::num_shards])))
    counts = np.bincount(labels, minlength=num_classes)
    for name, lines in ((layout.LABEL_COUNTS, counts), (layout.CLASS_WEIGHTS, [1.0] * num_classes),
                        (layout.LABELS, [f"class {c}" for c in range(num_classes)])):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in lines))
    info = layout.BuildInfo(
        schema_version=features.SCHEMA_VERSION, dataset_name="bench", num_classes=num_classes,
        splits={"train": layout.SplitInfo(len(labels), tuple(shards), {}, "generated", "")},
        supercategories=("all",), class_weighting={"scheme": "none"},
        files={"label_counts": layout.LABEL_COUNTS, "class_weights": layout.CLASS_WEIGHTS,
               "labels": layout.LABELS}, options={"generated_by": "benchmarks.input_bound"})
    with open(os.path.join(out_dir, layout.BUILD_INFO), "w", encoding="utf-8") as f:
        f.write(info.to_json())


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
    p.add_argument("--data_dir", help=f"default: {SAMPLE_BUILD} if built, else generated shards")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40, help="timed steps per round and input")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    data_dir = args.data_dir
    with tempfile.TemporaryDirectory() as tmp:
        if data_dir is None and os.path.exists(os.path.join(SAMPLE_BUILD, "build_info.json")):
            data_dir = SAMPLE_BUILD
        elif data_dir is None:
            log.info("No --data_dir and no sample build: generating shards in %s", tmp)
            write_shards(tmp)
            data_dir = tmp
        result = measure(data_dir, args.model, args.image_size, args.batch_size, args.steps,
                         args.rounds)
    sys.stdout.write(json.dumps(result) + "\n")  # the result line, machine-readable
    return 0


if __name__ == "__main__":
    sys.exit(main())
