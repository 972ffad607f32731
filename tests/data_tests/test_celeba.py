"""`celeba` on a small tree in CelebA's real layout: 178x218 JPEGs in img_align_celeba/, the
official split in list_eval_partition.txt and the attribute table list_attr_celeba.txt (a count
line, the 40 names, rows with two spaces before a positive value), read back through the registry;
each malformed file is one DataError line naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from models.config import ConfigError, parse_config
from runner import data as data_sources
from runner.cli import main
from runner.data import CelebaData, DataError

# list_attr_celeba.txt's second line, in its order.
ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
]
MALE, SMILING = ATTRIBUTES.index("Male"), ATTRIBUTES.index("Smiling")
WIDTH, HEIGHT = 178, 218
BAND = 20  # rows of white at the top and bottom of every face: outside the centred 178x178 square


def _face(index: int) -> np.ndarray:
    """A 218x178 BGR picture: one flat colour per image (so its place in the arrays shows which
    it is), white bands above and below the centred square."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = (40 + 10 * index, 200 - 10 * index, 90)  # B, G, R
    image[:BAND], image[-BAND:] = 255, 255
    return image


def _celeba_tree(root: Path, partitions=(0, 0, 0, 0, 1, 1, 2, 2, 2), seed: int = 0) -> np.ndarray:
    """Write CelebA's layout under root; returns the attribute table (N, 40) of 1 and -1."""
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{index:06d}.jpg" for index in range(1, len(partitions) + 1)]
    for index, name in enumerate(names):
        # quality 100 and no chroma subsampling: flat colours come back within a few levels
        quality = [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        assert cv2.imwrite(str(root / "img_align_celeba" / name), _face(index), quality)
    (root / "list_eval_partition.txt").write_text("".join(f"{name} {part}\n" for name, part in zip(names, partitions)))
    table = np.random.default_rng(seed).choice([-1, 1], (len(names), len(ATTRIBUTES)))
    rows = [name + "".join(f" {value:2d}" for value in values) for name, values in zip(names, table)]  # "-1", " 1"
    (root / "list_attr_celeba.txt").write_text(f"{len(names)}\n" + " ".join(ATTRIBUTES) + " \n" + "\n".join(rows) + "\n")
    return table


def _config(root: Path, **keys) -> CelebaData:
    return parse_config(CelebaData, {"path": str(root)} | keys, "data")


def _one_line_error(config, match: str) -> str:
    with pytest.raises(DataError, match=match) as caught:
        data_sources.SOURCES["celeba"].check(config)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_tree_is_written_in_the_real_layout(tmp_path):
    _celeba_tree(tmp_path)
    lines = (tmp_path / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "9" and len(lines[1].split()) == 40
    assert "  1" in lines[2] and lines[2].startswith("000001.jpg ")  # positive values right-aligned, as shipped
    assert (tmp_path / "list_eval_partition.txt").read_text().splitlines()[4] == "000005.jpg 1"
    assert cv2.imread(str(tmp_path / "img_align_celeba" / "000001.jpg")).shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("val_partition, val_rows", [("val", [4, 5]), ("test", [6, 7, 8])])
def test_the_official_split_with_an_attribute_as_labels(tmp_path, val_partition, val_rows):
    table = _celeba_tree(tmp_path)
    config = _config(tmp_path, label_attribute="Male", val_partition=val_partition)
    source = data_sources.SOURCES["celeba"]
    source.check(config)
    loaded = data_sources.load("celeba", config)
    assert loaded.info == source.describe(config) and loaded.info.image_shape == (3, 64, 64)
    assert loaded.num_classes == 2
    assert loaded.train_images.shape == (4, 3, 64, 64) and loaded.val_images.shape == (len(val_rows), 3, 64, 64)
    assert loaded.train_labels.tolist() == [int(v == 1) for v in table[:4, MALE]]
    assert loaded.val_labels.tolist() == [int(v == 1) for v in table[val_rows, MALE]]
    # each image where the partition file put it, RGB: its flat colour (away from the edges, where
    # JPEG rings next to the bands), and the white bands cropped away
    for images, rows in ((loaded.train_images, [0, 1, 2, 3]), (loaded.val_images, val_rows)):
        for image, row in zip(images, rows):
            blue, green, red = _face(row)[HEIGHT // 2, WIDTH // 2]
            inside = image[:, 4:-4, 4:-4].reshape(3, -1).astype(int)
            assert np.abs(inside - [[red], [green], [blue]]).max() <= 3
            assert image.min(axis=0).max() < 200
    assert source.count(config) == (4, len(val_rows))


def test_unlabelled_without_an_attribute_and_the_attribute_file_is_not_needed(tmp_path):
    _celeba_tree(tmp_path)
    (tmp_path / "list_attr_celeba.txt").unlink()
    config = _config(tmp_path, image_size=32, channels=1)
    data_sources.SOURCES["celeba"].check(config)
    loaded = data_sources.load("celeba", config)
    assert loaded.train_labels is None and loaded.num_classes is None
    assert loaded.train_images.shape == (4, 1, 32, 32)


def test_crop_none_keeps_the_bands_and_a_smaller_crop_is_taken_from_the_centre(tmp_path):
    _celeba_tree(tmp_path)
    whole = data_sources.load("celeba", _config(tmp_path, crop="none", image_size=218 // 2))
    assert whole.train_images[0, :, 0].min() >= 250  # the top band, squeezed but there
    assert whole.train_images[0, :, 54].max() < 250  # the middle: the face's colour
    # A 108 square: (218 - 108) / 2 = 55 rows and (178 - 108) / 2 = 35 columns off each side.
    small = data_sources.load("celeba", _config(tmp_path, crop_size=108, image_size=108))
    face = cv2.cvtColor(cv2.imread(str(tmp_path / "img_align_celeba" / "000001.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(small.train_images[0], face[55 : 55 + 108, 35 : 35 + 108].transpose(2, 0, 1))


def test_train_and_val_sizes_take_the_first_images_of_each_partition(tmp_path):
    table = _celeba_tree(tmp_path)
    config = _config(tmp_path, label_attribute="Smiling", train_size=2, val_size=1, val_partition="test")
    loaded = data_sources.load("celeba", config)
    assert len(loaded.train_images) == 2 and len(loaded.val_images) == 1
    assert loaded.val_labels.tolist() == [int(table[6, SMILING] == 1)]
    assert data_sources.SOURCES["celeba"].count(config) == (2, 1)


def test_validate_names_count_shape_and_classes(tmp_path):
    _celeba_tree(tmp_path / "celeba")
    spec = {
        "name": "faces", "model": {"name": "gan"},
        "data": {"name": "celeba", "path": str(tmp_path / "celeba"), "label_attribute": "Male", "crop_size": 148},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(
        "ok: 1 trial of gan on celeba (3x64x64, 2 classes), 4 train + 2 val images"
    )


# -- one line naming what is wrong ---------------------------------------------------------------------
def test_a_missing_partition_file_is_named(tmp_path):
    _celeba_tree(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    _one_line_error(_config(tmp_path), r"list_eval_partition.txt: missing \(CelebA's official split")


def test_a_missing_image_directory_is_named(tmp_path):
    tmp_path.joinpath("list_eval_partition.txt").write_text("000001.jpg 0\n")
    _one_line_error(_config(tmp_path), r"has no img_align_celeba/")
    _one_line_error(_config(tmp_path / "absent"), r"data.path: directory .*absent does not exist")


def test_the_image_folder_nested_in_one_of_its_name_is_found(tmp_path):
    _celeba_tree(tmp_path / "unpacked")
    nested = tmp_path / "unpacked" / "img_align_celeba" / "img_align_celeba"
    (tmp_path / "unpacked" / "img_align_celeba").rename(tmp_path / "moved")
    nested.parent.mkdir()
    (tmp_path / "moved").rename(nested)
    loaded = data_sources.load("celeba", _config(tmp_path / "unpacked"))
    assert loaded.train_images.shape == (4, 3, 64, 64)


def test_a_csv_copy_of_the_lists_is_pointed_at_the_official_text_files(tmp_path):
    _celeba_tree(tmp_path)
    (tmp_path / "list_eval_partition.txt").rename(tmp_path / "list_eval_partition.csv")
    _one_line_error(_config(tmp_path), r"holds list_eval_partition.csv \(a CSV copy, such as Kaggle's\), not CelebA's own")


def test_a_partition_naming_a_missing_image_is_named_with_its_line(tmp_path):
    _celeba_tree(tmp_path)
    (tmp_path / "img_align_celeba" / "000005.jpg").unlink()
    _one_line_error(_config(tmp_path), r"list_eval_partition.txt: line 5: 000005.jpg is not in .*img_align_celeba")
    # with the test partition as val, the val partition's images are not needed
    data_sources.SOURCES["celeba"].check(_config(tmp_path, val_partition="test"))


@pytest.mark.parametrize("line", ["000003.jpg", "000003.jpg 3", "000003.jpg 0 1", "000003.jpg train"])
def test_a_malformed_partition_line_is_named(tmp_path, line):
    _celeba_tree(tmp_path)
    path = tmp_path / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [line] + lines[3:]) + "\n")
    _one_line_error(_config(tmp_path), r"list_eval_partition.txt: line 3: expected 'NAME.jpg PARTITION' with partition 0, 1 or 2")


def test_an_empty_partition_is_named(tmp_path):
    _celeba_tree(tmp_path, partitions=(0, 0, 0, 2, 2))
    _one_line_error(_config(tmp_path), r"no image in the val partition")


def test_an_unknown_attribute_lists_some_that_are_known(tmp_path):
    _celeba_tree(tmp_path)
    message = _one_line_error(_config(tmp_path, label_attribute="smiling"), r"data.label_attribute: 'smiling' is not one of the 40 attributes")
    assert "Smiling" in message and "Male" in message
    with pytest.raises(ConfigError, match="data.label_attribute"):
        _config(tmp_path, label_attribute=3)


def test_a_missing_attribute_file_is_named_only_when_labels_are_asked_for(tmp_path):
    _celeba_tree(tmp_path)
    (tmp_path / "list_attr_celeba.txt").unlink()
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"list_attr_celeba.txt: missing \(needed by data.label_attribute")


def _damage_attributes(root: Path, line_number: int, replace) -> None:
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[line_number - 1] = replace(lines[line_number - 1])
    path.write_text("\n".join(lines) + "\n")


def test_a_truncated_attribute_row_is_named_with_its_line(tmp_path):
    _celeba_tree(tmp_path)
    _damage_attributes(tmp_path, 5, lambda line: line[:40])  # row of 000003.jpg, cut inside
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"list_attr_celeba.txt: line 5: 10 values for 40 attributes")


def test_an_attribute_value_other_than_plus_or_minus_one_is_named(tmp_path):
    _celeba_tree(tmp_path)
    _damage_attributes(tmp_path, 4, lambda line: " ".join(line.split()[: MALE + 1] + ["0"] + line.split()[MALE + 2 :]))
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"list_attr_celeba.txt: line 4: Male is '0'; values are 1 or -1")


def test_an_attribute_file_cut_short_is_named_by_its_count(tmp_path):
    _celeba_tree(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-3]) + "\n")
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"line 1 says 9 images, but 6 rows follow")


def test_an_image_without_an_attribute_row_is_named(tmp_path):
    _celeba_tree(tmp_path)
    _damage_attributes(tmp_path, 6, lambda line: "000099.jpg" + line[len("000004.jpg"):])
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"list_attr_celeba.txt: no row for 000004.jpg \(named on line 4 of list_eval_partition.txt\)")


def test_a_bad_count_line_is_named(tmp_path):
    _celeba_tree(tmp_path)
    _damage_attributes(tmp_path, 1, lambda _: "5_o_Clock_Shadow Arched_Eyebrows")
    _one_line_error(_config(tmp_path, label_attribute="Male"), r"list_attr_celeba.txt: line 1: expected the number of images")


def test_a_crop_larger_than_the_images_is_named_before_loading(tmp_path):
    _celeba_tree(tmp_path)
    _one_line_error(_config(tmp_path, crop_size=200), r"data.path: .*000001.jpg: 178x218 pixels, smaller than data.crop_size 200")
    _one_line_error(_config(tmp_path, crop="none", crop_size=148), r"data.crop_size: 148 given, but data.crop is none")
