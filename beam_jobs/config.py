"""The build job's flags, parsed once into a frozen `BuildConfig`.

Flags this module does not know are Beam pipeline options (`--runner`, `--direct_num_workers`,
`--project`, `--temp_location`, `--setup_file`, ...) and are passed through to Beam.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Optional, Sequence

from pipeline import images, sharding, weights
from schemas import layout



@dataclasses.dataclass(frozen=True)
class BuildConfig:
    annotations: tuple[tuple[str, str], ...]  # (split, annotation JSON path), sorted by split
    images_roots: tuple[tuple[str, str], ...]  # (split, folder that file_name is relative to)
    output_dir: str
    dataset_name: str
    max_side: Optional[int]
    jpeg_quality: int
    max_pixels: int
    target_shard_bytes: int
    num_shards: Optional[int]
    class_weighting: str
    beta: float
    max_reject_fraction: float
    sample: bool  # built the bundled sample because no --annotations were given

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(split for split, _ in self.annotations)

    def images_root(self, split: str) -> str:
        return dict(self.images_roots)[split]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _absolute(path: str) -> str:
    """Local paths become absolute (workers may run elsewhere); URLs such as gs:// stay."""
    return path if "://" in path else os.path.abspath(path)


def _split_and_path(value: str) -> tuple[str, str]:
    split, sep, path = value.partition("=")
    if not sep:
        return "train", value
    if not re.fullmatch(r"[a-zA-Z]\w*", split):
        raise argparse.ArgumentTypeError(f"bad split name {split!r} in --annotations {value!r}")
    return split, path


def default_dataset_name(images_root: str) -> str:
    """A dataset name from the images folder's name: `/data/inat2021` -> `inat2021`."""
    base = re.sub(r"\W", "_", os.path.basename(images_root.rstrip("/")))
    if not base or not base[0].isalpha():
        base = "d" + base
    return base


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m beam_jobs.build",
        description="Build sharded TFRecords, label counts and class weights from iNaturalist "
                    "images + annotation JSON. Unknown flags are Beam pipeline options. With no "
                    "--annotations, builds the bundled sample dataset.")
    p.add_argument("--annotations", action="append", type=_split_and_path, default=[],
                   metavar="[SPLIT=]PATH",
                   help="annotation JSON of one split; repeatable; a bare PATH is split 'train'")
    p.add_argument("--images_root", default=None,
                   help="folder that file_name is relative to (default: the annotation "
                        "file's folder)")
    p.add_argument("--output_dir", default=None,
                   help=f"output folder (default for the sample: {layout.SAMPLE_BUILD_DIR})")
    p.add_argument("--dataset_name", default=None,
                   help="shard file prefix, [a-zA-Z]\\w* (default: the images folder's name)")
    p.add_argument("--max_side", type=int, default=None,
                   help="downscale so the longer side is at most this (default: keep size)")
    p.add_argument("--jpeg_quality", type=int, default=90,
                   help="quality of re-encoded JPEGs (unchanged images keep their bytes)")
    p.add_argument("--max_pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
                   help="reject images with more decoded pixels (decompression bombs)")
    p.add_argument("--target_shard_mib", type=float,
                   default=sharding.DEFAULT_TARGET_SHARD_BYTES / 2**20,
                   help="choose the shard count for shards of about this size")
    p.add_argument("--num_shards", type=int, default=None,
                   help="exact shards per split (overrides --target_shard_mib)")
    p.add_argument("--class_weighting", choices=weights.SCHEMES, default="inverse")
    p.add_argument("--beta", type=float, default=0.999,
                   help="beta of the effective_number weighting (Cui et al. 2019)")
    p.add_argument("--max_reject_fraction", type=float, default=0.01,
                   help="fail the job (after writing rejects) when more inputs are rejected")
    return p


def parse_args(argv: Sequence[str]) -> tuple[BuildConfig, list[str]]:
    """Returns the build config and the remaining (Beam) arguments. Exits on bad flags."""
    parser = _parser()
    args, beam_args = parser.parse_known_args(argv)
    sample = not args.annotations
    if sample:
        from pipeline import sample as sample_data  # pylint: disable=import-outside-toplevel

        dataset = sample_data.ensure_sample()
        args.annotations = sorted(dataset.annotations.items())
        args.images_root = args.images_root or dataset.images_root
        args.output_dir = args.output_dir or layout.SAMPLE_BUILD_DIR
    if not args.output_dir:
        parser.error("--output_dir is required when --annotations are given")
    splits = [split for split, _ in args.annotations]
    if len(set(splits)) != len(splits):
        parser.error(f"a split is given twice in --annotations: {splits}")
    if "train" not in splits:
        parser.error("a 'train' split is required: label counts and class weights come from it")
    for name, value, low, high in (("--max_side", args.max_side, 1, None),
                                   ("--jpeg_quality", args.jpeg_quality, 1, 100),
                                   ("--num_shards", args.num_shards, 1, None),
                                   ("--max_pixels", args.max_pixels, 1, None)):
        if value is not None and (value < low or (high is not None and value > high)):
            parser.error(f"{name} must be in [{low}, {high or 'inf'}], got {value}")
    if args.target_shard_mib <= 0:
        parser.error("--target_shard_mib must be > 0")
    if not 0 <= args.max_reject_fraction <= 1:
        parser.error("--max_reject_fraction must be in [0, 1]")
    if not 0 <= args.beta < 1:
        parser.error("--beta must be in [0, 1)")
    annotations = tuple(sorted((split, _absolute(path)) for split, path in args.annotations))
    roots = tuple((split, _absolute(args.images_root or os.path.dirname(path)))
                  for split, path in annotations)
    dataset_name = args.dataset_name or default_dataset_name(roots[0][1])
    if not layout.DATASET_NAME_RE.match(dataset_name):
        parser.error(f"--dataset_name must match {layout.DATASET_NAME_RE.pattern}, "
                     f"got {dataset_name!r}")
    config = BuildConfig(
        annotations=annotations, images_roots=roots, output_dir=_absolute(args.output_dir),
        dataset_name=dataset_name, max_side=args.max_side, jpeg_quality=args.jpeg_quality,
        max_pixels=args.max_pixels, target_shard_bytes=int(args.target_shard_mib * 2**20),
        num_shards=args.num_shards, class_weighting=args.class_weighting, beta=args.beta,
        max_reject_fraction=args.max_reject_fraction, sample=sample)
    return config, beam_args
