"""iNaturalist annotation files: parse them, build the shared label map, join them into records.

Pure functions, no Beam. The build job calls, in this order:

    data = parse_annotation_file(raw_bytes, path)                     # per file; fails fast
    label_map = build_label_map({path: data["categories"], ...})      # once, over all splits
    for item in join_annotations(data, split, path, label_map): ...   # ImageRecord or Reject

The files are COCO-style objects with `images`, `annotations`, `categories` (plus `info` and
`licenses`, which are not needed). The category fields differ by year:

- 2017: `id`, `name`, `supercategory` (the bbox file's annotations also carry `bbox`, `area`).
- 2018: adds the ranks `kingdom`, `phylum`, `class`, `order`, `family`, `genus`.
- 2019: the ranks but no `supercategory`: `kingdom` stands in for it.
- 2021: adds `common_name`, `specific_epithet`, `image_dir_name`; images carry `date`,
  `latitude`, `longitude`, `location_uncertainty` (any of them may be null).

Only `id`, `name`, `supercategory`, the ranks, and the images' `id` and `file_name` are read;
everything else is ignored, so nulls in the other fields do no harm.

Errors come in two kinds. A problem with a whole file (not JSON, wrong shape, a test-set file
without annotations, splits whose categories disagree) raises `AnnotationError`, whose message
starts with the file path. A problem with one image or annotation becomes a `Reject` (codes in
`pipeline.records`) and the join goes on. A Reject's `detail` starts with "PATH: annotation ..."
when it accounts for one annotation and with "PATH: image ..." when it reports an image that no
annotation accounts for, so every annotation is accounted for exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any, Iterator, Mapping, Optional, Union

from pipeline import records
from pipeline.records import ImageRecord, Reject

logger = logging.getLogger(__name__)

# Taxonomic ranks as iNat spells them, most general first; `Category.ranks` keeps this order.
RANK_KEYS = ("kingdom", "phylum", "class", "order", "family", "genus", "specific_epithet",
             "common_name")

_INT_ID = re.compile(r"-?[0-9]+")


class AnnotationError(ValueError):
    """A fatal problem with an annotation file; the message starts with the file's path."""


# ---------------------------------------------------------------------------------------------
# Reading a file


def parse_annotation_file(data: bytes, path: str) -> dict:
    """Decodes one annotation file and checks its top level.

    It must be a JSON object with list-valued `images` and `categories`; `annotations`, if
    present and not null, must be a list too. A missing `annotations` key is not an error here:
    `join_annotations` reports it, since only labelled splits need it.
    """
    if not data:
        raise AnnotationError(f"{path}: is empty (0 bytes), expected iNaturalist annotation JSON")
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except UnicodeDecodeError as e:
        raise AnnotationError(
            f"{path}: not valid JSON (not UTF-8 text: {e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise AnnotationError(f"{path}: not valid JSON (nested too deeply to parse)") from e
    if not isinstance(obj, dict):
        raise AnnotationError(f"{path}: top level is a JSON {_json_type(obj)}, expected an "
                              "object with 'images' and 'categories' (iNaturalist/COCO layout)")
    for key in ("images", "categories"):
        if key not in obj:
            present = ", ".join(repr(k) for k in sorted(obj)[:10]) or "none"
            raise AnnotationError(f"{path}: has no '{key}' key (keys present: {present}); "
                                  "expected the iNaturalist/COCO annotation layout")
        if not isinstance(obj[key], list):
            raise AnnotationError(
                f"{path}: '{key}' is a JSON {_json_type(obj[key])}, expected a list")
    annotations = obj.get("annotations")
    if annotations is not None and not isinstance(annotations, list):
        raise AnnotationError(
            f"{path}: 'annotations' is a JSON {_json_type(annotations)}, expected a list")
    return obj


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------
# Categories and the label map


@dataclasses.dataclass(frozen=True)
class Category:
    category_id: int  # source id in the JSON
    name: str
    supercategory: str  # `supercategory`, else `kingdom` (2019), else ""
    ranks: tuple[tuple[str, str], ...]  # (rank, value) in RANK_KEYS order, ranks present only


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """Class index = position in `categories` (sorted by source id), shared by all splits."""

    categories: tuple[Category, ...]  # sorted by category_id
    supercategories: tuple[str, ...]  # sorted unique names; dense supercategory index = position
    # category_id -> (class index, supercategory index, Category); derived, for O(1) joins.
    _lookup: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [c.category_id for c in self.categories]
        if ids != sorted(set(ids)):
            raise ValueError("LabelMap.categories must be sorted by unique category_id")
        if self.supercategories != tuple(sorted({c.supercategory for c in self.categories})):
            raise ValueError("LabelMap.supercategories must be the sorted unique supercategories "
                             "of its categories")
        dense = {name: i for i, name in enumerate(self.supercategories)}
        lookup = {c.category_id: (i, dense[c.supercategory], c)
                  for i, c in enumerate(self.categories)}
        object.__setattr__(self, "_lookup", lookup)  # frozen: set once, here

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def _entry(self, category_id: int) -> tuple:
        try:
            return self._lookup[category_id]
        except KeyError:
            raise KeyError(f"category id {category_id!r} is not in the label map") from None

    def index(self, category_id: int) -> int:
        """Dense class index (0..C-1) of a source category id; KeyError if unknown."""
        return self._entry(category_id)[0]

    def supercategory_index(self, category_id: int) -> int:
        """Dense index of the category's supercategory in `supercategories`; KeyError if unknown."""
        return self._entry(category_id)[1]

    def names(self) -> list[str]:
        """Class names in class-index order (the lines of labels.txt)."""
        return [c.name for c in self.categories]

    def rows(self) -> list[dict]:
        """One dict per class, in index order, for label_map.json."""
        return [{"index": i, "category_id": c.category_id, "name": c.name,
                 "supercategory": c.supercategory,
                 "supercategory_index": self._lookup[c.category_id][1], **dict(c.ranks)}
                for i, c in enumerate(self.categories)]


def build_label_map(categories_by_path: Mapping[str, list[dict]]) -> LabelMap:
    """Builds the label map from each annotation file's `categories` list.

    All files must list the same category ids with the same names, since every split's records
    use one label map. Supercategory or rank differences only log a warning; the values of the
    first file in path order are used.
    """
    if not categories_by_path:
        raise AnnotationError("no annotation files given: cannot build a label map")
    parsed = {path: _parse_categories(cats, path)
              for path, cats in sorted(categories_by_path.items())}
    (ref_path, ref), *others = parsed.items()
    for path, cats in others:
        _check_same_categories(ref_path, ref, path, cats)
    categories = tuple(ref[i] for i in sorted(ref))
    return LabelMap(categories, tuple(sorted({c.supercategory for c in categories})))


def _parse_categories(raw_categories: Any, path: str) -> dict[int, Category]:
    if not isinstance(raw_categories, list):
        raise AnnotationError(
            f"{path}: 'categories' is a JSON {_json_type(raw_categories)}, expected a list")
    if not raw_categories:
        raise AnnotationError(f"{path}: 'categories' is empty; a label map needs at least one")
    by_id: dict[int, Category] = {}
    for pos, raw in enumerate(raw_categories):
        category = _parse_category(raw, pos, path)
        if category.category_id in by_id:
            raise AnnotationError(f"{path}: category id {category.category_id} appears more "
                                  f"than once in 'categories' (again at categories[{pos}])")
        by_id[category.category_id] = category
    return by_id


def _parse_category(raw: Any, pos: int, path: str) -> Category:
    where = f"{path}: categories[{pos}]"
    if not isinstance(raw, dict):
        raise AnnotationError(f"{where} is a JSON {_json_type(raw)}, expected an object")
    if "id" not in raw:
        raise AnnotationError(f"{where} has no 'id'")
    category_id = raw["id"]
    if isinstance(category_id, bool) or not isinstance(category_id, int):
        raise AnnotationError(f"{where} has id {category_id!r}, expected an integer")
    name = raw.get("name")
    if not isinstance(name, str):
        raise AnnotationError(f"{where} (id {category_id}) has no string 'name' (got {name!r})")
    if "\n" in name or "\r" in name:
        # labels.txt holds one name per line.
        raise AnnotationError(f"{where} (id {category_id}) has a line break in its name {name!r}")
    supercategory = _text(raw.get("supercategory"))
    if supercategory is None:
        supercategory = _text(raw.get("kingdom")) or ""  # 2019 has ranks but no supercategory
    ranks = tuple((rank, str(raw[rank])) for rank in RANK_KEYS if raw.get(rank) is not None)
    return Category(category_id, name, supercategory, ranks)


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _check_same_categories(path_a: str, cats_a: dict[int, Category],
                           path_b: str, cats_b: dict[int, Category]) -> None:
    prefix = (f"{path_a} and {path_b}: category lists disagree (all splits share one label "
              "map)")
    only_a, only_b = sorted(cats_a.keys() - cats_b), sorted(cats_b.keys() - cats_a)
    if only_a or only_b:
        example = (f"category id {only_a[0]} is in {path_a} but not in {path_b}" if only_a else
                   f"category id {only_b[0]} is in {path_b} but not in {path_a}")
        raise AnnotationError(f"{prefix}: {example} ({len(only_a) + len(only_b)} ids differ)")
    renamed = [i for i in sorted(cats_a) if cats_a[i].name != cats_b[i].name]
    if renamed:
        i = renamed[0]
        raise AnnotationError(f"{prefix}: category id {i} is named {cats_a[i].name!r} in "
                              f"{path_a} but {cats_b[i].name!r} in {path_b} "
                              f"({len(renamed)} names differ)")
    differ = [i for i in sorted(cats_a) if cats_a[i] != cats_b[i]]
    if differ:
        logger.warning("%s and %s: %d categories differ in supercategory or ranks (e.g. id %d); "
                       "using those of %s", path_a, path_b, len(differ), differ[0], path_a)


# ---------------------------------------------------------------------------------------------
# Joining images, annotations and categories


def join_annotations(data: dict, split: str, path: str,
                     label_map: LabelMap) -> Iterator[Union[ImageRecord, Reject]]:
    """Joins one parsed file's images, annotations and categories by id.

    Yields one ImageRecord per image with a usable annotation, and Rejects for the rest:
    every annotation becomes exactly one ImageRecord or one Reject, and every image is in one
    ImageRecord or named by a Reject. Output is sorted by image id (numeric ids numerically),
    then come rejects for annotations of unknown images and images without an id.

    Reject codes: UNKNOWN_IMAGE for an annotation whose image_id is missing or not in `images`
    (or that is not an object); DUPLICATE_IMAGE_ID for each annotation of an id listed more than
    once in `images`, or once for such an id if no annotation refers to it; MISSING_FILE for
    each annotation of an image entry without a `file_name`; UNKNOWN_CATEGORY for a missing or
    unknown category_id; UNANNOTATED_IMAGE for an image that no annotation refers to, or whose
    id is missing or unusable; MULTIPLE_ANNOTATIONS as follows.

    When an image has several valid annotations, the one with the lowest annotation `id` is
    written (annotations without an integer id rank after those with one, then by position in
    the file) and the others are rejected as MULTIPLE_ANNOTATIONS. Annotations that are invalid
    on their own (unknown category) are rejected for that and take no part in the choice.

    Image ids are compared as strings (ints in iNat, str(id) in ImageRecord.image_id), so the
    written image ids are unique. Raises AnnotationError (eagerly, before the first item) for a
    file without images, or with images but no annotations (a test-set file).
    """
    check_labelled(data, path)
    return _join(data["images"], data["annotations"], split, path, label_map)


def check_labelled(data: dict, path: str) -> None:
    """Raises AnnotationError unless the file has images and a list of annotations: the driver
    calls this to fail fast, `join_annotations` again on the worker."""
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise AnnotationError(f"{path}: has no images; an empty split cannot be built")
    annotations = data.get("annotations")
    if not annotations:
        raise AnnotationError(f"{path}: has no annotations (a test-set file?); only labelled "
                              "splits can be built")
    if not isinstance(annotations, list):
        raise AnnotationError(
            f"{path}: 'annotations' is a JSON {_json_type(annotations)}, expected a list")


def _join(images: list, annotations: list, split: str, path: str,
          label_map: LabelMap) -> Iterator[Union[ImageRecord, Reject]]:
    # One pass over each list into dicts: iNat2021 train has 2.7M images.
    by_id: dict[str, dict] = {}  # first entry for each image id
    duplicates: dict[str, list[dict]] = {}  # all entries of ids seen more than once
    late: list[tuple[tuple, Reject]] = []  # rejects that belong to no known image, with sort key
    for pos, image in enumerate(images):
        key = _id_key(image.get("id")) if isinstance(image, dict) else None
        if key is None:
            what = (repr(image.get("id")) if isinstance(image, dict) and "id" in image else
                    "missing" if isinstance(image, dict) else f"a JSON {_json_type(image)}")
            late.append(((2, (pos,)), Reject(
                split, records.UNANNOTATED_IMAGE,
                f"{path}: image at images[{pos}] has no usable id ({what}), so no annotation "
                "can refer to it", file_name=_file_name(image))))
        elif key in by_id:
            duplicates.setdefault(key, [by_id[key]]).append(image)
        else:
            by_id[key] = image

    # Annotation positions per image id; a list only for the rare image with several.
    first_ann: dict[str, int] = {}
    more_anns: dict[str, list[int]] = {}
    for pos, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            late.append(((1, (2, 0, pos)), Reject(
                split, records.UNKNOWN_IMAGE,
                f"{path}: annotation at annotations[{pos}] is a JSON {_json_type(ann)}, "
                "not an object")))
            continue
        key = _id_key(ann.get("image_id"))
        if key is None:
            late.append(((1, _annotation_order(ann, pos)), Reject(
                split, records.UNKNOWN_IMAGE,
                f"{path}: {_describe(ann, pos)} has no usable image_id "
                f"({ann.get('image_id', 'missing')!r})", category_id=_int_or_none(ann))))
        elif key not in by_id:
            late.append(((0, _id_order(key), _annotation_order(ann, pos)), Reject(
                split, records.UNKNOWN_IMAGE,
                f"{path}: {_describe(ann, pos)} refers to image id {key}, which is not in "
                "'images'", image_id=key, category_id=_int_or_none(ann))))
        elif key in first_ann:
            more_anns.setdefault(key, []).append(pos)
        else:
            first_ann[key] = pos

    num_records = num_rejects = 0
    lookup = label_map._lookup  # pylint: disable=protected-access  # the hot loop
    for key in sorted(by_id, key=_id_order):
        pos = first_ann.get(key)
        if pos is not None and key not in more_anns and key not in duplicates:
            # Fast path for the usual case, one good annotation of one good image: it saves
            # about half the time on iNat2021's 2.7M images. `type(...) is` excludes bool.
            image, ann = by_id[key], annotations[pos]
            file_name, category_id = image.get("file_name"), ann.get("category_id")
            entry = lookup.get(category_id) if type(category_id) is int else None
            if entry is not None and type(file_name) is str and file_name:
                label, supercategory, category = entry
                num_records += 1
                yield ImageRecord(split=split, image_id=key, file_name=file_name,
                                  category_id=category_id, label=label,
                                  label_text=category.name, supercategory=supercategory)
                continue
        positions = [first_ann[key], *more_anns.get(key, ())] if key in first_ann else []
        if len(positions) > 1:  # rejects in annotation id order, not file order
            positions.sort(key=lambda pos: _annotation_order(annotations[pos], pos))
        for item in _join_image(key, by_id[key], duplicates.get(key), positions, annotations,
                                split, path, label_map):
            if isinstance(item, ImageRecord):
                num_records += 1
            else:
                num_rejects += 1
            yield item
    late.sort(key=lambda pair: pair[0])
    for _, reject in late:
        num_rejects += 1
        yield reject
    logger.info("%s (split %s): %d images, %d annotations -> %d records, %d rejects",
                path, split, len(images), len(annotations), num_records, num_rejects)


def _join_image(key: str, image: dict, duplicate_entries: Optional[list[dict]],
                positions: list[int], annotations: list, split: str, path: str,
                label_map: LabelMap) -> Iterator[Union[ImageRecord, Reject]]:
    """The records and rejects of one image id that is present in `images`."""
    file_name = _file_name(image)
    if duplicate_entries is not None:
        # Sorted, so that the reject does not depend on the order of `images`.
        all_names = sorted((_file_name(e) for e in duplicate_entries),
                           key=lambda name: (name is None, name or ""))
        file_name = all_names[0]
        names = ", ".join(repr(n) for n in all_names[:3])
        why = (f"image id {key} appears {len(duplicate_entries)} times in 'images' "
               f"(file names {names}{', ...' if len(duplicate_entries) > 3 else ''})")
        if not positions:
            yield Reject(split, records.DUPLICATE_IMAGE_ID, f"{path}: {why}",
                         image_id=key, file_name=file_name)
        for pos in positions:
            ann = annotations[pos]
            yield Reject(split, records.DUPLICATE_IMAGE_ID,
                         f"{path}: {_describe(ann, pos)} refers to an ambiguous image: {why}",
                         image_id=key, file_name=file_name, category_id=_int_or_none(ann))
        return
    if not positions:
        yield Reject(split, records.UNANNOTATED_IMAGE,
                     f"{path}: image id {key} ({file_name!r}) has no annotation",
                     image_id=key, file_name=file_name)
        return
    if file_name is None:
        for pos in positions:
            ann = annotations[pos]
            yield Reject(split, records.MISSING_FILE,
                         f"{path}: {_describe(ann, pos)} refers to image id {key}, which has no "
                         f"file_name in 'images' (got {image.get('file_name', 'missing')!r})",
                         image_id=key, category_id=_int_or_none(ann))
        return

    candidates = []  # (choice order, position, lookup entry)
    lookup = label_map._lookup  # pylint: disable=protected-access  # the hot loop
    for pos in positions:
        ann = annotations[pos]
        category_id = _int_or_none(ann)
        entry = lookup.get(category_id) if category_id is not None else None
        if entry is None:
            got = ann.get("category_id", "missing")
            why = ("has no usable category_id" if category_id is None else
                   "names a category id that is not in 'categories'")
            yield Reject(split, records.UNKNOWN_CATEGORY,
                         f"{path}: {_describe(ann, pos)} (image id {key}) {why} ({got!r})",
                         image_id=key, file_name=file_name, category_id=category_id)
        else:
            candidates.append((_annotation_order(ann, pos), pos, entry))
    if not candidates:
        return
    # `positions` come sorted by _annotation_order, so the first candidate is the one to keep.
    _, kept_pos, (label, supercategory, category) = candidates[0]
    yield ImageRecord(split=split, image_id=key, file_name=file_name,
                      category_id=category.category_id, label=label, label_text=category.name,
                      supercategory=supercategory)
    kept = _describe(annotations[kept_pos], kept_pos)
    for _, pos, (_, _, other) in candidates[1:]:
        agree = ("same category" if other.category_id == category.category_id else
                 f"category {category.category_id}, not {other.category_id}")
        yield Reject(split, records.MULTIPLE_ANNOTATIONS,
                     f"{path}: {_describe(annotations[pos], pos)} is another annotation of image "
                     f"id {key}; {kept} was written instead ({agree})",
                     image_id=key, file_name=file_name, category_id=other.category_id)


def _id_key(value: Any) -> Optional[str]:
    """An image id as the string the join compares, or None if it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def _id_order(key: str) -> tuple:
    """Sort key: integer-looking ids numerically, then the rest as strings."""
    if (key.isascii() and key.isdigit()) or _INT_ID.fullmatch(key):  # isdigit: fast check
        return (0, int(key), key)
    return (1, 0, key)


def _annotation_order(ann: dict, pos: int) -> tuple:
    ann_id = ann.get("id")
    if isinstance(ann_id, int) and not isinstance(ann_id, bool):
        return (0, ann_id, pos)
    return (1, 0, pos)


def _int_or_none(ann: dict) -> Optional[int]:
    value = ann.get("category_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _file_name(image: Any) -> Optional[str]:
    value = image.get("file_name") if isinstance(image, dict) else None
    return value if isinstance(value, str) and value else None


def _describe(ann: dict, pos: int) -> str:
    """How a detail names an annotation: by its id, or by position if it has none."""
    if "id" in ann:
        return f"annotation id {ann['id']!r}"
    return f"annotation at annotations[{pos}] (no id)"
