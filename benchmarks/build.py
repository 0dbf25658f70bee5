"""Build-job throughput against a naive single-process loop, measured in the same run.

    python -m benchmarks.build                       # 12,000 images, all cases
    python -m benchmarks.build --num_images 2000 --workers 2

Generates (once, cached under outputs/bench_build/) iNat2018-like JPEGs: 800 px on the longer
side, ~100-250 KB, with an iNat2018-layout annotation file. Then times:
  (a) naive: one process, PIL full decode -> bicubic resize to 400 -> JPEG encode ->
      tf.train.Example -> tf.io.TFRecordWriter (what hand-rolled scripts do);
  (b) ours: `python -m beam_jobs.build --max_side 400` on DirectRunner with 2 workers, timed
      as a user runs it (process start to exit);
  (c) ours with nothing to resize (--max_side unset: bytes kept, only verified), the
      passthrough case.
The job has a fixed start-up and tear-down cost (~11 s here: worker processes, a TensorFlow
import in each, Beam's shutdown) that a real dataset (437k-2.7M images) amortises, so (b) also
runs on the first half of the images: (N - N/2) / (t(N) - t(N/2)) is the marginal rate, the
speed-up at scale. Prints one JSON line with images/s for each and the ratios against (a).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

CACHE = "outputs/bench_build"


def _make_image(seed: int) -> bytes:
    """An 800-px photo-like JPEG: a smooth random colour field plus fine grain (~100-250 KB)."""
    rng = np.random.default_rng(seed)
    w, h = (800, int(rng.integers(530, 640))) if seed % 3 else (int(rng.integers(530, 640)), 800)
    coarse = rng.integers(0, 256, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3),
                          dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.int16)
    grain = int(rng.integers(8, 24))  # sets the file size, like texture in real photos
    pixels = field + rng.integers(-grain, grain + 1, (h, w, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=92)
    return out.getvalue()


def _write_one(args):
    root, i = args
    path = os.path.join(root, "train_val2018", f"c{i % 50:03d}", f"{i:06d}.jpg")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(_make_image(i))
    return os.path.relpath(path, root)


def make_dataset(root: str, num_images: int) -> str:
    """Writes the images and an iNat2018-style train2018.json (cached); returns the JSON path."""
    ann_path = os.path.join(root, "train2018.json")
    if os.path.exists(ann_path):
        with open(ann_path) as f:
            if len(json.load(f)["images"]) == num_images:
                return ann_path
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with multiprocessing.Pool() as pool:
        names = pool.map(_write_one, [(root, i) for i in range(num_images)], chunksize=64)
    cats = [{"id": c, "name": f"Species {c}", "supercategory": "Plantae", "kingdom": "Plantae",
             "phylum": "P", "class": "C", "order": "O", "family": "F", "genus": f"G{c}"}
            for c in range(50)]
    doc = {"info": {"year": 2018}, "licenses": [], "categories": cats,
           "images": [{"id": i, "file_name": n, "width": 800, "height": 600}
                      for i, n in enumerate(names)],
           "annotations": [{"id": i, "image_id": i, "category_id": i % 50}
                           for i in range(num_images)]}
    half = dict(doc, images=doc["images"][:num_images // 2],
                annotations=doc["annotations"][:num_images // 2])
    with open(_half(ann_path), "w") as f:
        json.dump(half, f)
    with open(ann_path + ".tmp", "w") as f:  # written last: marks the dataset complete
        json.dump(doc, f)
    os.replace(ann_path + ".tmp", ann_path)
    return ann_path


def _half(ann_path: str) -> str:
    return ann_path.replace(".json", "_half.json")


def naive(ann_path: str, out_path: str, max_side: int = 400) -> float:
    """The hand-rolled baseline; returns images/s."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    root = os.path.dirname(ann_path)
    with open(ann_path) as f:
        doc = json.load(f)
    label = {a["image_id"]: a["category_id"] for a in doc["annotations"]}
    start = time.monotonic()
    with tf.io.TFRecordWriter(out_path) as writer:
        for image in doc["images"]:
            img = Image.open(os.path.join(root, image["file_name"])).convert("RGB")
            scale = max_side / max(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)),
                             Image.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[buf.getvalue()])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[label[image["id"]]])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    return len(doc["images"]) / (time.monotonic() - start)


def ours(ann_path: str, out_dir: str, workers: int, extra: list[str]) -> tuple[float, float]:
    """Runs the build job as a user would; returns (seconds for the whole command, peak RSS
    in MiB of the largest process it started)."""
    cmd = [sys.executable, "-m", "beam_jobs.build", "--runner", "DirectRunner",
           "--direct_running_mode", "multi_processing", "--direct_num_workers", str(workers),
           "--annotations", f"train={ann_path}", "--output_dir", out_dir,
           "--max_reject_fraction", "0"] + extra
    start = time.monotonic()
    # A wrapper process per run, so that RUSAGE_CHILDREN's max RSS is this run's alone.
    wrapped = [sys.executable, "-c", _MEASURE, *cmd]
    result = subprocess.run(wrapped, check=True, capture_output=True, text=True)
    return time.monotonic() - start, float(result.stdout.strip().splitlines()[-1])


# Runs argv[1:] and prints the peak RSS (MiB) of its largest descendant.
_MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=12000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ann_path = make_dataset(os.path.join(CACHE, f"raw_{args.num_images}"), args.num_images)
    src_bytes = sum(os.path.getsize(os.path.join(d, f))
                    for d, _, fs in os.walk(os.path.dirname(ann_path)) for f in fs
                    if f.endswith(".jpg"))
    logging.info("dataset: %d images, mean %.0f KB", args.num_images,
                 src_bytes / args.num_images / 1024)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        a = naive(ann_path, os.path.join(tmp, "naive.tfrecord"))
        logging.info("(a) naive loop: %.0f images/s", a)
        n = args.num_images
        t_half, half_rss = ours(_half(ann_path), os.path.join(tmp, "half"), args.workers,
                         ["--max_side", "400"])
        t_full, b_rss = ours(ann_path, os.path.join(tmp, "resize"), args.workers,
                             ["--max_side", "400"])
        b, marginal = n / t_full, (n - n // 2) / (t_full - t_half)
        logging.info("(b) beam_jobs.build --max_side 400: %.0f images/s end to end (%.1f s), "
                     "%.0f images/s marginal, peak RSS %.0f MiB", b, t_full, marginal, b_rss)
        t_pass, c_rss = ours(ann_path, os.path.join(tmp, "pass"), args.workers, [])
        c = n / t_pass
        logging.info("(c) beam_jobs.build passthrough: %.0f images/s, peak RSS %.0f MiB",
                     c, c_rss)
    print(json.dumps({"num_images": n, "workers": args.workers,
                      "naive_img_per_s": round(a, 1), "ours_resize_img_per_s": round(b, 1),
                      "ours_resize_marginal_img_per_s": round(marginal, 1),
                      "ours_passthrough_img_per_s": round(c, 1),
                      "ratio_resize_vs_naive": round(b / a, 2),
                      "ratio_resize_marginal_vs_naive": round(marginal / a, 2),
                      "ratio_passthrough_vs_naive": round(c / a, 2),
                      "source_mib": round(src_bytes / 2**20),
                      "peak_rss_mib": {"resize_half_the_images": round(half_rss),
                                       "resize": round(b_rss), "passthrough": round(c_rss)}}))

if __name__ == "__main__":
    main()
