"""Input throughput: the original TF1 queue-runner + feed_dict path against `train.data`.

    python -m benchmarks.reader                    # on a cached build of 2,000 generated photos
    python -m benchmarks.reader --data_dir OUT     # on a build job's output folder

Both paths read the same shards in the same process and deliver batches of 60 images of 299x299
in [-1, 1]. Each round builds a path, warms it up, times the same number of images and closes it
(so neither path's background threads run while the other is timed); rounds alternate
(a, b, a, b, ...) so that load from other processes hits both, and the best round of each
counts. Also reported: process CPU milliseconds per image, less sensitive to such load.

(a) the original script's input path, rebuilt in a `tf.compat.v1` graph: string_input_producer
    over the shards -> TFRecordReader -> parse -> decode_jpeg -> resize to 320x320 ->
    shuffle_batch with `--tf1_threads` threads; each batch is pulled to numpy with sess.run,
    centre-cropped to 299 in numpy and fed back through feed_dict to a trivial graph (scale to
    [-1, 1], reduce_mean), as the original fed float images.
(b) `train.data.make_dataset(training=True)`: random-resized-crop decoding only the crop,
    flip, uint8 batches (the model scales them to [-1, 1] on the device, as `train.models`
    does); each batch is reduced (reduce_max) so that no work is skipped.

Logs go to stderr; the last line on stdout is one JSON object with images/s for both and the
ratio b / a.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time


from benchmarks import shards
from schemas import features

TF1_RESIZE = 320  # the original resized to 320x320, then centre-cropped 299 in numpy


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    data_dir: str | None  # None: a cached build of generated photos (benchmarks/shards.py)
    num_records: int = 2000  # generated photos to build, without data_dir
    num_images: int = 3000  # timed per path per round
    warmup_batches: int = 10
    rounds: int = 3
    batch_size: int = 60
    image_size: int = 299
    tf1_threads: int = 4  # shuffle_batch threads: "several", as the original
    split: str = "train"


class Tf1QueuePath:
    """The original input path: queue runners in a graph, numpy crop, feed_dict to the model."""

    def __init__(self, paths: list[str], config: BenchConfig):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        self._config = config
        self._graph = tf.Graph()
        # A private graph + Session: graph mode without disabling eager for the process, so
        # path (b) runs eagerly in the same run.
        with self._graph.as_default():
            filename_queue = tf.compat.v1.train.string_input_producer(paths, shuffle=True)
            _, serialized = tf.compat.v1.TFRecordReader().read(filename_queue)
            record = features.parse_example(serialized)
            image = tf.io.decode_jpeg(record["image"], channels=3)
            image = tf.compat.v1.image.resize_images(image, [TF1_RESIZE, TF1_RESIZE])
            # Decoded float images wait in the queue (1.2 MB each at 320x320), so keep it small.
            min_after_dequeue = 4 * config.batch_size
            self._batch = tf.compat.v1.train.shuffle_batch(
                [image, record["label"]], batch_size=config.batch_size,
                capacity=min_after_dequeue + 3 * config.batch_size,
                min_after_dequeue=min_after_dequeue, num_threads=config.tf1_threads)
            self._fed = tf.compat.v1.placeholder(
                tf.float32, [None, config.image_size, config.image_size, 3])
            # The trivial "model": scales to [-1, 1] (in the graph, not numpy, so that (a) is
            # not charged for numpy arithmetic) and reduces.
            self._model = tf.reduce_mean(self._fed * (2.0 / 255.0) - 1.0)
            self._session = tf.compat.v1.Session(graph=self._graph)
            self._coord = tf.compat.v1.train.Coordinator()
            self._threads = tf.compat.v1.train.start_queue_runners(self._session, self._coord)

    def step(self) -> None:
        images, _ = self._session.run(self._batch)
        offset = (TF1_RESIZE - self._config.image_size) // 2
        crop = images[:, offset:offset + self._config.image_size,
                      offset:offset + self._config.image_size]
        self._session.run(self._model, feed_dict={self._fed: crop})

    def close(self) -> None:
        self._coord.request_stop()  # the queue runners close their queues on this
        self._coord.join(self._threads, stop_grace_period_secs=10)
        self._session.close()


class TfDataPath:
    """Our reader: `train.data.make_dataset(training=True)`, consumed eagerly."""

    def __init__(self, data_dir: str, config: BenchConfig, num_records: int):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from train import data  # pylint: disable=import-outside-toplevel

        reader_config = data.ReaderConfig(
            image_size=config.image_size, batch_size=config.batch_size,
            shuffle_buffer=min(10_000, num_records))  # a buffer beyond the data holds copies
        self._reduce = tf.reduce_max  # any full pass over the uint8 batch
        self._iterator = iter(data.make_dataset(data_dir, config.split, reader_config,
                                                training=True, seed=0, repeat=True))

    def step(self) -> None:
        images, _, _ = next(self._iterator)
        self._reduce(images).numpy()  # touch the batch: work cannot be skipped

    def close(self) -> None:
        self._iterator = None


def _time_round(make_path, config: BenchConfig) -> tuple[float, float]:
    """Builds a path, warms it up, times it; returns (images/s, process CPU ms per image)."""
    path = make_path()
    try:
        for _ in range(config.warmup_batches):  # fills queues, buffers and tf.data's autotuner
            path.step()
        steps = max(1, config.num_images // config.batch_size)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            path.step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        path.close()
    images = steps * config.batch_size
    return images / wall, cpu / images * 1e3


def run(config: BenchConfig) -> dict:
    """Runs both paths and returns the summary (also printed by main)."""
    from train import data  # pylint: disable=import-outside-toplevel

    data_dir = config.data_dir or shards.ensure_build(config.num_records)
    info = data.load_build_info(data_dir)
    num_records = info.splits[config.split].num_records
    paths = data.shard_paths(data_dir, info, config.split)
    makers = {"tf1": lambda: Tf1QueuePath(paths, config),
              "tf_data": lambda: TfDataPath(data_dir, config, num_records)}
    rates: dict[str, list[float]] = {name: [] for name in makers}
    cpu_ms: dict[str, list[float]] = {name: [] for name in makers}
    load_before = os.getloadavg()[0]
    for round_index in range(config.rounds):
        for name, make_path in makers.items():
            rate, cpu = _time_round(make_path, config)
            rates[name].append(rate)
            cpu_ms[name].append(cpu)
            logging.info("Round %d: %-7s %6.0f images/s, %.2f CPU ms/image (load %.1f)",
                         round_index + 1, name, rate, cpu, os.getloadavg()[0])
    best = {name: max(values) for name, values in rates.items()}
    return {
        "benchmark": "reader",
        "tf1_queue_feed_dict_images_per_s": round(best["tf1"], 1),
        "tf_data_images_per_s": round(best["tf_data"], 1),
        "ratio": round(best["tf_data"] / best["tf1"], 2),
        "images_per_s_by_round": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "cpu_ms_per_image_best": {k: round(min(vs), 3) for k, vs in cpu_ms.items()},
        "images_timed_per_round": max(1, config.num_images // config.batch_size)
        * config.batch_size,
        "num_records": num_records,
        "batch_size": config.batch_size,
        "image_size": config.image_size,
        "tf1_threads": config.tf1_threads,
        "cpus": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "data_dir": data_dir,
    }


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    defaults = BenchConfig(data_dir=None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--data_dir", default=None,
                        help="a build output folder; default: a cached build of generated photos")
    parser.add_argument("--split", default=defaults.split)
    parser.add_argument("--num_records", type=int, default=defaults.num_records,
                        help="generated photos to build (without --data_dir)")
    parser.add_argument("--num_images", type=int, default=defaults.num_images,
                        help="images timed per path and round")
    parser.add_argument("--warmup_batches", type=int, default=defaults.warmup_batches)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--tf1_threads", type=int, default=defaults.tf1_threads)
    args = parser.parse_args(argv)
    if min(args.num_records, args.num_images, args.rounds, args.batch_size,
           args.tf1_threads) <= 0 or args.warmup_batches < 0:
        parser.error("counts must be positive (warmup_batches >= 0)")
    return BenchConfig(**vars(args))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF is first imported
    print(json.dumps(run(parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
