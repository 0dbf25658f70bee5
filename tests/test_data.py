"""Tests for train/data.py, the trainer's input pipeline, on tiny fixture builds.

    python -m pytest tests/test_data.py -q
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from schemas import features, layout
from tests import shardfixtures
from train import data

SIZE = 24  # output image side: tiny, so the file runs in seconds


def _image_key(image: np.ndarray) -> str:
    """Identifies an eval-decoded image (fixture images are pure noise, so all differ)."""
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _raw_records(data_dir: str, info: layout.BuildInfo, split: str) -> list[dict]:
    """The split's records, parsed eagerly shard by shard (independently of make_dataset)."""
    records = []
    for path in data.shard_paths(data_dir, info, split):
        for serialized in tf.data.TFRecordDataset(path):
            records.append(features.parse_example(serialized))
    return records


class ReaderTest(tf.test.TestCase):
    test_session = None  # tf.test.TestCase's deprecated helper; pytest would report it skipped


    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        # Train 16 + 8 + 5 + 4 = 33 records in 3 shards; val 4 * 5 = 20 records in 3 shards.
        self.info = shardfixtures.write_fixture_build(
            self.dir, num_classes=4, val_per_class=5, num_shards=3, image_size=(40, 30))
        self.weights = data.load_class_weights(self.dir, self.info)
        self.config = data.ReaderConfig(image_size=SIZE, batch_size=8, shuffle_buffer=64)

    # --- metadata ----------------------------------------------------------------------------

    def test_loads_statistics_from_the_build(self):
        self.assertAllEqual(data.load_label_counts(self.dir, self.info), [16, 8, 5, 4])
        self.assertEqual(data.load_label_counts(self.dir, self.info).dtype, np.int64)
        self.assertEqual(self.weights.dtype, np.float32)
        self.assertAllClose(self.weights, 4 * (1 / np.array([16, 8, 5, 4])) /
                            np.sum(1 / np.array([16, 8, 5, 4])))
        self.assertEqual([e["name"] for e in data.load_label_map(self.dir, self.info)],
                         [f"Species {i}" for i in range(4)])
        self.assertLen(data.shard_paths(self.dir, self.info, "train"), 3)

    def test_missing_build_info_names_the_folder(self):
        os.remove(os.path.join(self.dir, layout.BUILD_INFO))
        with self.assertRaisesRegex(FileNotFoundError, "not a complete build"):
            data.load_build_info(self.dir)
        with self.assertRaisesRegex(FileNotFoundError, self.dir):
            data.make_dataset(self.dir, "train", self.config, training=True)

    def test_schema_version_mismatch_is_an_error(self):
        path = os.path.join(self.dir, layout.BUILD_INFO)
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        raw["schema_version"] = features.SCHEMA_VERSION + 1
        with open(path, "w", encoding="utf-8") as f:
            json.dump(raw, f)
        with self.assertRaisesRegex(ValueError, "schema version"):
            data.load_build_info(self.dir)

    def test_unknown_split_lists_the_known_ones(self):
        with self.assertRaisesRegex(ValueError, r"no split 'test'.*\['train', 'val'\]"):
            data.shard_paths(self.dir, self.info, "test")

    def test_class_weights_of_the_wrong_length_are_rejected(self):
        with open(os.path.join(self.dir, layout.CLASS_WEIGHTS), "w", encoding="utf-8") as f:
            f.write("1.0\n1.0\n")
        with self.assertRaisesRegex(ValueError, "2 values.*num_classes=4"):
            data.load_class_weights(self.dir, self.info)
        with self.assertRaisesRegex(ValueError, "class_weights has shape"):
            data.make_dataset(self.dir, "val", self.config, training=False,
                              class_weights=np.ones([3], np.float32))

    # --- batches -----------------------------------------------------------------------------

    def test_training_batches_shapes_dtypes_range_and_weights(self):
        ds = data.make_dataset(self.dir, "train", self.config, training=True,
                               class_weights=self.weights, seed=1)
        self.assertEqual(ds.element_spec[0].shape.as_list(), [8, SIZE, SIZE, 3])
        batches = list(ds)
        self.assertLen(batches, 33 // 8)  # drop_remainder: 4 full batches, the last 1 dropped
        for images, labels, sample_weights in batches:
            self.assertEqual(images.dtype, tf.uint8)  # the model scales them, on the device
            self.assertEqual(labels.dtype, tf.int32)
            self.assertEqual(sample_weights.dtype, tf.float32)
            self.assertEqual(images.shape, (8, SIZE, SIZE, 3))
            self.assertAllClose(sample_weights, self.weights[labels.numpy()])
        # Images use the range, not a sliver of it (no scaling slipped in on the host).
        first = batches[0][0]
        self.assertGreater(int(tf.reduce_max(first)) - int(tf.reduce_min(first)), 100)

    def test_repeat_keeps_every_training_batch_full(self):
        ds = data.make_dataset(self.dir, "train", self.config, training=True, repeat=True)
        for _, labels, sample_weights in ds.take(10):  # 80 records: more than two epochs
            self.assertEqual(labels.shape, (8,))
            self.assertAllEqual(sample_weights, np.ones([8], np.float32))  # no class_weights

    def test_eval_sees_every_record_exactly_once_in_a_fixed_order(self):
        ds = data.make_dataset(self.dir, "val", self.config, training=False,
                               class_weights=self.weights)
        passes = []
        for _ in range(2):
            images, labels, sample_weights = (np.concatenate(parts) for parts in zip(*ds))
            passes.append((images, labels))
            self.assertAllClose(sample_weights, self.weights[labels])
        self.assertLen(passes[0][1], 20)  # no drop_remainder: 8 + 8 + 4
        self.assertAllEqual(passes[0][0], passes[1][0])  # same order on every pass
        expected = collections.Counter(
            (int(r["label"]), _image_key(data.decode_eval(r["image"], SIZE).numpy()))
            for r in _raw_records(self.dir, self.info, "val"))
        actual = collections.Counter(
            (int(label), _image_key(image)) for image, label in zip(*passes[0]))
        self.assertLen(expected, 20)  # every record distinct, so the comparison is exact
        self.assertEqual(actual, expected)

    def test_input_context_splits_files_disjointly(self):
        keys = []
        for pipeline_id in range(2):
            context = tf.distribute.InputContext(
                num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
            ds = data.make_dataset(self.dir, "val", self.config, training=False,
                                   input_context=context)
            self.assertEqual(ds.element_spec[0].shape[0], None)
            batch_sizes = [len(labels) for _, labels, _ in ds]
            self.assertLessEqual(max(batch_sizes), 4)  # global 8 over 2 replicas
            keys.append({_image_key(image) for images, _, _ in ds for image in images.numpy()})
        self.assertEmpty(keys[0] & keys[1])
        self.assertLen(keys[0] | keys[1], 20)

    def test_too_few_files_for_the_input_pipelines_is_an_error(self):
        context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=0)
        with self.assertRaisesRegex(ValueError, "3 shard files, fewer than the 4 input"):
            data.make_dataset(self.dir, "val", self.config, training=False,
                              input_context=context)

    def test_out_of_range_label_raises_a_clear_error(self):
        rng = np.random.default_rng(0)
        bad = [shardfixtures.make_record(shardfixtures.make_jpeg(rng, (9, 9, 9), (40, 30)),
                                         (40, 30), label, "x", 0, f"bad-{label}")
               for label in (1, 7)]
        shardfixtures.write_shard(data.shard_paths(self.dir, self.info, "val")[0], bad)
        ds = data.make_dataset(self.dir, "val", self.config, training=False)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    r"label out of range \[0, 4\)(.|\n)*bad-7"):
            list(ds)

    # --- per-record decoding -----------------------------------------------------------------

    def test_decode_train_eagerly_and_inside_a_dataset_agree(self):
        image_bytes = _raw_records(self.dir, self.info, "train")[0]["image"]
        seed = tf.constant([3, 4], tf.int64)
        eager = data.decode_train(image_bytes, SIZE, 0.1, seed=seed)
        in_graph = next(iter(tf.data.Dataset.from_tensors((image_bytes, seed)).map(
            lambda b, s: data.decode_train(b, SIZE, 0.1, seed=s))))
        self.assertEqual(eager.shape, (SIZE, SIZE, 3))
        self.assertAllClose(eager, in_graph)
        # Other seeds give other crops (the augmentation is not a no-op).
        others = [data.decode_train(image_bytes, SIZE, 0.1, seed=tf.constant([s, 0]))
                  for s in range(5)]
        self.assertTrue(any(np.abs(o.numpy().astype(int) - eager.numpy()).max() > 20
                            for o in others))

    def test_decode_train_whole_image_crop_equals_a_plain_resize(self):
        image_bytes = _raw_records(self.dir, self.info, "train")[0]["image"]
        # min area 1 and a wide aspect range: the only valid crop is the whole image.
        cropped = data.decode_train(image_bytes, SIZE, 1.0, aspect_ratio_range=(0.5, 2.0),
                                    random_flip=False, seed=tf.constant([1, 2]))
        full = tf.image.resize(tf.io.decode_jpeg(image_bytes, channels=3), [SIZE, SIZE])
        self.assertEqual(cropped.dtype, tf.uint8)
        self.assertAllClose(tf.cast(cropped, tf.float32), full, atol=0.5)  # rounded, not cut

    def test_decode_eval_eagerly_and_inside_a_dataset_agree(self):
        image_bytes = _raw_records(self.dir, self.info, "val")[0]["image"]
        eager = data.decode_eval(image_bytes, SIZE)
        in_graph = next(iter(tf.data.Dataset.from_tensors(image_bytes).map(
            lambda b: data.decode_eval(b, SIZE))))
        self.assertAllEqual(eager, in_graph)
        # The centre square of 87.5% of the 30 px side: 26 x 26 at (2, 7).
        decoded = tf.cast(tf.io.decode_jpeg(image_bytes, channels=3), tf.float32)
        expected = tf.image.resize(decoded[2:28, 7:33], [SIZE, SIZE])
        self.assertAllClose(tf.cast(eager, tf.float32), expected, atol=0.5)

    def test_crop_window_respects_a_per_record_min_area(self):
        shape = tf.constant([300, 400, 3])
        def areas(min_area, floor):
            windows = [data.sample_crop_window(shape, tf.constant(min_area), min_area_floor=floor,
                                               seed=tf.constant([s, 7]))
                       for s in range(60)]
            return np.array([int(w[2]) * int(w[3]) / (300 * 400) for w in windows])
        common = areas(0.5, 0.05)  # floor below min_area: rejection keeps area >= 0.5
        rare = areas(0.05, 0.05)
        self.assertGreaterEqual(common.min(), 0.49)  # 0.01 slack for rounding to pixels
        self.assertLess(rare.min(), 0.3)
        self.assertLess(rare.mean(), common.mean())

    # --- rare-class augmentation -------------------------------------------------------------

    def test_rare_class_rule(self):
        config = data.ReaderConfig(min_crop_area=0.3, rare_class_min_crop_area=0.05)
        # Median of the non-zero counts [16, 8, 5, 4] is 6.5: classes 2 and 3 are rare; the
        # class without records counts as rare too (it never appears in training).
        self.assertAllClose(data.per_class_min_crop_area(np.array([16, 8, 5, 4, 0]), config),
                            [0.3, 0.3, 0.05, 0.05, 0.05])
        self.assertAllClose(data.per_class_min_crop_area(np.array([5, 5, 5]), config),
                            [0.3, 0.3, 0.3])  # equal counts: nobody is rare
        quartile = data.ReaderConfig(min_crop_area=0.3, rare_class_min_crop_area=0.05,
                                     rare_class_quantile=0.25)
        self.assertAllClose(data.per_class_min_crop_area(np.array([16, 8, 5, 4]), quartile),
                            [0.3, 0.3, 0.3, 0.05])
        self.assertAllClose(data.per_class_min_crop_area(np.array([16, 8, 5, 4]),
                                                         data.ReaderConfig(min_crop_area=0.3)),
                            [0.3] * 4)  # rule off by default
        with self.assertRaisesRegex(ValueError, "stronger augmentation"):
            data.ReaderConfig(min_crop_area=0.1, rare_class_min_crop_area=0.5)

    def test_rare_class_rule_runs_in_the_training_pipeline(self):
        config = data.ReaderConfig(image_size=SIZE, batch_size=8, shuffle_buffer=64,
                                   min_crop_area=0.5, rare_class_min_crop_area=0.05)
        batches = list(data.make_dataset(self.dir, "train", config, training=True, seed=0))
        self.assertLen(batches, 4)  # label_counts read from the folder, pipeline runs
        with self.assertRaisesRegex(ValueError, "label_counts has shape"):
            data.make_dataset(self.dir, "train", config, training=True, label_counts=[1, 2])


class FixtureTest(tf.test.TestCase):
    test_session = None  # tf.test.TestCase's deprecated helper; pytest would report it skipped


    def test_fixture_folder_matches_the_contract(self):
        with tempfile.TemporaryDirectory() as out:
            info = shardfixtures.write_fixture_build(out, train_per_class=(3, 0, 2),
                                                     num_classes=3, val_per_class=1,
                                                     num_shards=5)
            self.assertEqual(data.load_build_info(out), info)  # JSON round trip
            self.assertEqual(len(info.splits["val"].shards), 3)  # never more shards than records
            self.assertAllEqual(np.loadtxt(os.path.join(out, layout.LABEL_COUNTS), dtype=int),
                                [3, 0, 2])
            weights = data.load_class_weights(out, info)
            self.assertEqual(weights[1], 0.0)  # no records, no weight
            self.assertAllClose(weights[weights > 0].mean(), 1.0)  # over classes with records
            records = _raw_records(out, info, "train")
            self.assertLen(records, info.splits["train"].num_records)
            self.assertEqual(collections.Counter(int(r["label"]) for r in records), {0: 3, 2: 2})
            for shard in info.splits["train"].shards:
                self.assertEqual(sum(1 for _ in tf.data.TFRecordDataset(
                    os.path.join(out, shard.file))), shard.num_records)


if __name__ == "__main__":
    tf.test.main()
