"""A tiny raw dataset in the iNaturalist 2021 layout, with every kind of bad input, for the
build job's tests. Plain helpers, no tests here."""

from __future__ import annotations

import json
import os

from pipeline import records
from tests import imagefixtures

CATEGORIES = [  # listed out of id order on purpose: the label map sorts by id
    {"id": 30, "name": "Tertius tertius", "supercategory": "Plants", "kingdom": "Plantae"},
    {"id": 10, "name": "Primus primus", "supercategory": "Birds", "kingdom": "Animalia"},
    {"id": 20, "name": "Secundus secundus", "supercategory": "Birds", "kingdom": "Animalia"},
]
LABEL_OF = {10: 0, 20: 1, 30: 2}
NAMES = {c["name"] for c in CATEGORIES}


def _image(image_id, file_name):
    return {"id": image_id, "file_name": file_name, "width": 0, "height": 0, "license": 1,
            "rights_holder": "x", "date": "2021-01-01", "latitude": None, "longitude": None,
            "location_uncertainty": None}


def make_raw_dataset(root: str, *, awkward: bool = True, train_per_class=(8, 5, 3),
                     val_per_class=2) -> dict:
    """Writes images and train.json/val.json under root.

    Returns {"annotations": {split: path}, "expected": {split: {image_id: reason or "ok"}},
    "labels": {split: {image_id: label}}} for the annotations that should be written.
    """
    expected = {"train": {}, "val": {}}
    labels = {"train": {}, "val": {}}
    data = {}
    next_id = 1000
    for split, per_class in (("train", train_per_class), ("val", (val_per_class,) * 3)):
        imgs, anns = [], []
        for (cat_id, label), count in zip(sorted(LABEL_OF.items()), per_class):
            for i in range(count):
                next_id += 1
                name = f"{split}/{cat_id}/{next_id}.jpg"
                path = os.path.join(root, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                # Some images are larger than the test's --max_side, so both paths run.
                w, h = (96 + 8 * i, 64) if i % 2 else (40, 56)
                with open(path, "wb") as f:
                    f.write(imagefixtures.rgb_jpeg(w, h, seed=next_id))
                imgs.append(_image(next_id, name))
                anns.append({"id": next_id * 10, "image_id": next_id, "category_id": cat_id})
                expected[split][str(next_id)] = "ok"
                labels[split][str(next_id)] = label
        data[split] = (imgs, anns)
    if awkward:
        imgs, anns = data["train"]
        outcomes = imagefixtures.write_awkward_tree(root)
        for k, (name, outcome) in enumerate(sorted(outcomes.items())):
            image_id = 5000 + k
            imgs.append(_image(image_id, name))
            anns.append({"id": image_id * 10, "image_id": image_id, "category_id": 10})
            expected["train"][str(image_id)] = outcome
            if outcome == "ok":
                labels["train"][str(image_id)] = 0
        imgs.append(_image(6001, "train/10/does_not_exist.jpg"))
        anns.append({"id": 60010, "image_id": 6001, "category_id": 10})
        expected["train"]["6001"] = records.MISSING_FILE
        imgs.append(_image(6002, "../outside.jpg"))
        anns.append({"id": 60020, "image_id": 6002, "category_id": 10})
        expected["train"]["6002"] = records.PATH_ESCAPES_ROOT
        anns.append({"id": 60030, "image_id": 1001, "category_id": 99})  # second, bad category
        anns.append({"id": 60040, "image_id": 777777, "category_id": 10})  # no such image
        imgs.append(_image(6005, "train/10/1001.jpg"))
        imgs.append(_image(6005, "train/10/1002.jpg"))  # duplicate image id
        anns.append({"id": 60050, "image_id": 6005, "category_id": 10})
        expected["train"]["6005"] = records.DUPLICATE_IMAGE_ID
    paths = {}
    for split, (imgs, anns) in data.items():
        doc = {"info": {"year": 2021}, "licenses": [], "categories": CATEGORIES,
               "images": imgs[::-1], "annotations": anns[::-1]}  # reversed: join by id
        paths[split] = os.path.join(root, f"{split}.json")
        with open(paths[split], "w") as f:
            json.dump(doc, f)
    return {"annotations": paths, "expected": expected, "labels": labels}
