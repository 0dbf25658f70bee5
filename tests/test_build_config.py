"""The build job's flags: defaults resolved once, bad combinations refused at start-up."""

from __future__ import annotations

import pytest

from beam_jobs import config


def _parse(*argv):
    return config.parse_args(list(argv))


def test_splits_paths_and_beam_options(tmp_path):
    cfg, beam_args = _parse("--annotations", "/d/train.json", "--annotations", "val=/d/val.json",
                            "--output_dir", str(tmp_path), "--runner", "DirectRunner",
                            "--direct_num_workers", "2")
    assert cfg.annotations == (("train", "/d/train.json"), ("val", "/d/val.json"))
    assert cfg.images_root("val") == "/d" and cfg.dataset_name == "d"
    assert beam_args == ["--runner", "DirectRunner", "--direct_num_workers", "2"]
    assert cfg.target_shard_bytes == 200 * 2**20 and cfg.max_side is None


def test_gs_paths_are_kept_as_urls():
    cfg, _ = _parse("--annotations", "gs://b/inat2021/train.json", "--output_dir", "gs://b/out")
    assert cfg.annotations == (("train", "gs://b/inat2021/train.json"),)
    assert cfg.images_root("train") == "gs://b/inat2021" and cfg.output_dir == "gs://b/out"
    assert cfg.dataset_name == "inat2021"


@pytest.mark.parametrize("argv, message", [
    (["--annotations", "val=/d/val.json", "--output_dir", "o"], "'train' split is required"),
    (["--annotations", "/d/a.json", "--annotations", "train=/d/b.json", "--output_dir", "o"],
     "given twice"),
    (["--annotations", "/d/train.json"], "--output_dir is required"),
    (["--annotations", "/d/train.json", "--output_dir", "o", "--dataset_name", "1bad"],
     "--dataset_name must match"),
    (["--annotations", "/d/train.json", "--output_dir", "o", "--jpeg_quality", "0"],
     "--jpeg_quality must be in"),
    (["--annotations", "/d/train.json", "--output_dir", "o", "--max_reject_fraction", "2"],
     "--max_reject_fraction"),
    (["--annotations", "bad-split=/d/x.json", "--output_dir", "o"], "bad split name"),
])
def test_bad_flags_fail_at_start_up(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(*argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_default_dataset_name_is_a_valid_prefix():
    assert config.default_dataset_name("/data/inat-2021/") == "inat_2021"
    assert config.default_dataset_name("/data/2021") == "d2021"
