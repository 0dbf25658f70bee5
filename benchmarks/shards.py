"""Real build-job output for the reader benchmarks, made once and cached under outputs/.

Generated iNat2018-like photos (`benchmarks.build.make_dataset`, 800 px) run through the real
`beam_jobs.build --max_side 400`, so the readers are timed on exactly what users train on.
"""

from __future__ import annotations

import logging
import os

from benchmarks import build as build_bench
from beam_jobs import build
from schemas import layout

CACHE = "outputs/bench_shards"


def ensure_build(num_images: int, max_side: int = 400, num_shards: int = 8) -> str:
    """Returns the output folder of a build of `num_images` generated photos (cached)."""
    out_dir = os.path.join(CACHE, f"{num_images}_{max_side}_{num_shards}")
    if os.path.exists(os.path.join(out_dir, layout.BUILD_INFO)):
        return out_dir
    ann_path = build_bench.make_dataset(
        os.path.join(build_bench.CACHE, f"raw_{num_images}"), num_images)
    logging.info("building %d images into %s", num_images, out_dir)
    if build.main(["--annotations", f"train={ann_path}", "--output_dir", out_dir,
                   "--max_side", str(max_side), "--num_shards", str(num_shards),
                   "--runner", "FnApiRunner", "--direct_running_mode", "multi_processing",
                   "--direct_num_workers", "2"]) != 0:
        raise RuntimeError(f"the build of {ann_path} failed; see the log above")
    return out_dir
