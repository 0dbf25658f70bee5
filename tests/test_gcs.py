"""End-to-end: a build whose every path is on gs:// works, against a GCS emulator on 127.0.0.1.

Proves that the build job's I/O (annotations, images, spill files, shards copied up from a
local temporary file, atomic metadata writes by rename, the stale-shard match and the spill
folder's removal) works through Beam's GCS filesystem: the shards listed in build_info.json
exist in the bucket and hold exactly the expected images with the right labels,
label_counts.txt matches them, a shard of an earlier build is removed, nothing temporary is
left in the bucket, and a missing gs:// image becomes a `missing_file` reject, not a crash.

The emulator is the PyPI `gcp-storage-emulator`, run in this process; the build runs on the
in-memory FnApiRunner, in this process too, so the environment set here reaches its workers.
No connection may leave the loopback interface: a guard records any attempt and fails the test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.internal.gcp import auth
from apache_beam.io.filesystems import FileSystems
from gcp_storage_emulator.server import create_server

from beam_jobs import build
from pipeline import records, storage
from schemas import features, layout
from tests import buildfixtures

BUCKET = "inat-test"
RAW = f"gs://{BUCKET}/raw"
OUT = f"gs://{BUCKET}/out"
MISSING_ID = "7001"  # an annotated image whose object is not in the bucket
STALE_SHARD = layout.shard_name("tiny", "train", 0, 5)  # left by an "earlier build"


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "localhost"):  # None: getaddrinfo's "this machine", e.g. a bind to ""
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: would need DNS
        return False


def _guard_network(mp: pytest.MonkeyPatch, attempts: list) -> None:
    """Refuses (and records) every connection or name lookup that would leave 127.0.0.1."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _check(family, address):
        if family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            attempts.append(address)
            raise OSError(f"test_gcs: refused a connection to {address!r} (loopback only)")

    def connect(self, address):
        _check(self.family, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self.family, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            attempts.append(host)
            raise socket.gaierror(f"test_gcs: refused to resolve {host!r} (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket.socket, "connect_ex", connect_ex)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs():
    """An emulated bucket on 127.0.0.1 that Beam's FileSystems reach as gs://BUCKET/..."""
    attempts = []
    with pytest.MonkeyPatch.context() as mp:
        _guard_network(mp, attempts)
        port = _free_port()
        # The storage client sends every request here (and uses no credentials) when set.
        mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        # Should google-auth ever run, it must not probe the GCE metadata server.
        mp.setenv("NO_GCE_CHECK", "true")
        mp.setenv("GOOGLE_CLOUD_PROJECT", "test")
        # Beam looks up Application Default Credentials before making its storage client and,
        # finding none, retries with backoff (~22-25 s per process) before connecting
        # anonymously. The emulator needs no credentials: skip the look-up, so Beam builds
        # `storage.Client.create_anonymous_client()` at once (gcsio.create_storage_client).
        mp.setattr(auth, "get_service_credentials", lambda pipeline_options: None)
        server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
        # `start` waits for the server thread without a timeout; if the port were taken in
        # the meantime it would wait forever, so wait for it here with one.
        starter = threading.Thread(target=server.start, daemon=True)
        starter.start()
        starter.join(timeout=30)
        if starter.is_alive():
            pytest.fail(f"the GCS emulator did not start on 127.0.0.1:{port}")
        try:
            yield BUCKET
        finally:
            server.stop()
    assert not attempts, f"the test tried to reach beyond loopback: {attempts}"


def _upload_tree(local_root: str, gcs_root: str) -> None:
    for folder, _, names in os.walk(local_root):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, local_root).replace(os.sep, "/")
            with open(path, "rb") as src, FileSystems.create(f"{gcs_root}/{rel}") as dst:
                dst.write(src.read())


def _list(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


@pytest.fixture(scope="module")
def built(gcs, tmp_path_factory):
    """Uploads the fixture dataset, plus an annotation whose image is not uploaded, and a stale
    shard in the output folder; builds gs:// -> gs://; downloads the output to a local folder.
    """
    raw = tmp_path_factory.mktemp("raw")
    fx = buildfixtures.make_raw_dataset(str(raw), awkward=False)
    doc = json.loads((raw / "train.json").read_text())
    image = dict(doc["images"][0], id=int(MISSING_ID), file_name="train/10/not_uploaded.jpg")
    doc["images"].append(image)
    doc["annotations"].append({"id": 70010, "image_id": int(MISSING_ID), "category_id": 10})
    (raw / "train.json").write_text(json.dumps(doc))
    _upload_tree(str(raw), RAW)
    storage.write_bytes_atomic(f"{OUT}/{STALE_SHARD}", b"not a shard of this build")

    rc = build.main([
        "--annotations", f"train={RAW}/train.json", "--annotations", f"val={RAW}/val.json",
        "--images_root", RAW, "--output_dir", OUT, "--runner", "FnApiRunner",
        "--max_side", "64", "--dataset_name", "tiny", "--num_shards", "2",
        # One reject in 23 inputs is over the default 1%; the build must still complete.
        "--max_reject_fraction", "0.1"])

    # tf.io.gfile cannot reach the emulator: read the output back through Beam's FileSystems.
    local = tmp_path_factory.mktemp("out_from_gcs")
    listing = _list(f"{OUT}/**")
    for path in listing:
        (local / path.rsplit("/", 1)[-1]).write_bytes(storage.read_bytes(path))
    return {"rc": rc, "fx": fx, "local": local, "listing": listing}


def _read_split(local, info, split):
    parsed = []
    for shard in info.splits[split].shards:
        for raw in tf.data.TFRecordDataset(str(local / shard.file)):
            parsed.append({k: v.numpy() for k, v in features.parse_example(raw).items()})
    return parsed


def _info(built) -> layout.BuildInfo:
    return layout.BuildInfo.from_json((built["local"] / layout.BUILD_INFO).read_text())


def test_build_succeeds_and_build_info_lists_shards_in_the_bucket(built):
    assert built["rc"] == 0
    assert f"{OUT}/{layout.BUILD_INFO}" in built["listing"]
    info = _info(built)
    for split in ("train", "val"):
        names = [s.file for s in info.splits[split].shards]
        assert names == [layout.shard_name("tiny", split, i, 2) for i in range(2)]
        for name in names:
            assert f"{OUT}/{name}" in built["listing"]
    assert json.loads((built["local"] / layout.BUILD_CONFIG).read_text())["output_dir"] == OUT


def test_shards_hold_exactly_the_expected_images_with_their_labels(built):
    info, fx = _info(built), built["fx"]
    for split in ("train", "val"):
        parsed = _read_split(built["local"], info, split)
        written = [r["source_id"].decode() for r in parsed]
        assert len(written) == len(set(written)), "an image was written twice"
        assert set(written) == {i for i, o in fx["expected"][split].items() if o == "ok"}
        assert {r["source_id"].decode(): int(r["label"]) for r in parsed} == fx["labels"][split]
        assert info.splits[split].num_records == len(written)
        for r in parsed:
            assert max(tf.io.decode_jpeg(r["image"]).shape[:2]) <= 64


def test_label_counts_match_the_written_train_records(built):
    info = _info(built)
    labels = [r["label"] for r in _read_split(built["local"], info, "train")]
    counts = np.loadtxt(built["local"] / layout.LABEL_COUNTS, dtype=int)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=info.num_classes))
    np.testing.assert_array_equal(counts, [8, 5, 3])  # train_per_class of the fixture


def test_missing_gcs_image_is_a_missing_file_reject(built):
    rejects = [json.loads(line)
               for line in (built["local"] / layout.REJECTS).read_text().splitlines()]
    assert [(r["split"], r["image_id"], r["reason"]) for r in rejects] == [
        ("train", MISSING_ID, records.MISSING_FILE)]
    assert f"{RAW}/train/10/not_uploaded.jpg" in rejects[0]["detail"]
    assert _info(built).splits["train"].rejected == {records.MISSING_FILE: 1}


def test_missing_gcs_object_reads_as_file_not_found(gcs):
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"{RAW}/no/such/object.jpg")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"gs://{gcs}-no-such-bucket/a.jpg")


def test_bucket_holds_only_the_inputs_and_the_finished_output(built):
    info = _info(built)
    shards = {s.file for split in info.splits.values() for s in split.shards}
    metadata_files = {layout.BUILD_INFO, layout.BUILD_CONFIG, layout.LABEL_COUNTS,
                      layout.CLASS_WEIGHTS, layout.LABELS, layout.LABEL_MAP, layout.REJECTS}
    # No spill folder (_tmp_build-*), no .incomplete-* shard, no .tmp-* metadata file, and
    # the earlier build's shard is gone.
    assert built["listing"] == sorted(f"{OUT}/{name}" for name in shards | metadata_files)
    assert STALE_SHARD not in shards
    outside_out = [p for p in _list(f"gs://{BUCKET}/**") if not p.startswith(f"{OUT}/")]
    assert outside_out and all(p.startswith(f"{RAW}/") for p in outside_out)
    assert not [p for p in outside_out if ".tmp-" in p or ".incomplete" in p]
