"""Shard planning, spill files and shard writing, without a runner."""

from __future__ import annotations

import collections
import os

import pytest
import tensorflow as tf

from pipeline import sharding


def test_num_shards_from_target_size_never_more_than_records():
    assert sharding.choose_num_shards(1000, 1000 * 2**20, 200 * 2**20) == 5
    assert sharding.choose_num_shards(3, 10 * 2**30, 200 * 2**20) == 3
    assert sharding.choose_num_shards(10, 1, 200 * 2**20) == 1
    assert sharding.choose_num_shards(10, 1, num_shards=4) == 4
    with pytest.raises(ValueError, match="empty split"):
        sharding.choose_num_shards(0, 0)


def test_plan_gives_equal_nonempty_shards_independent_of_input_order():
    ids = [str(i) for i in range(1003)]
    keys = [sharding.sort_key(i) for i in ids]
    plan = sharding.plan_shards(keys, 0, num_shards=10)
    assert plan == sharding.plan_shards(list(reversed(keys)), 0, num_shards=10)
    sizes = collections.Counter(plan.shard_of(i) for i in ids)
    assert sorted(sizes) == list(range(10))
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_shards_mix_classes():
    """Ids of one class are consecutive (as in a class-sorted listing); shards still mix."""
    ids = [f"{label}-{i}" for label in range(5) for i in range(40)]
    plan = sharding.plan_shards([sharding.sort_key(i) for i in ids], 0, num_shards=4)
    per_shard = collections.defaultdict(set)
    for image_id in ids:
        per_shard[plan.shard_of(image_id)].add(image_id.split("-")[0])
    assert all(len(labels) == 5 for labels in per_shard.values())


def test_spilled_records_come_back_in_hash_order(tmp_path):
    refs = []
    for bundle in range(3):
        writer = sharding.SpillWriter(str(tmp_path))
        for i in range(bundle, 30, 3):
            data = f"record {i}".encode() * (i + 1)
            path, offset = writer.append(data)
            refs.append(sharding.SpilledExample("train", str(i), 0, path, offset, len(data)))
        writer.close()
    records = sharding.read_spilled(refs[::-1])
    expected = sorted(range(30), key=lambda i: (sharding.sort_key(str(i)), str(i)))
    assert records == [f"record {i}".encode() * (i + 1) for i in expected]


def test_tfrecord_file_is_renamed_into_place(tmp_path):
    path = str(tmp_path / "x.tfrecord-00000-of-00001")
    sharding.write_tfrecord_file([b"a", b"bc"], path)
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"a", b"bc"]
    assert os.listdir(tmp_path) == ["x.tfrecord-00000-of-00001"]
