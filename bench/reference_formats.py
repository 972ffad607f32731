"""Data sets in the publishers' formats, made here, for the reference runs' data-path checks.

    python bench/reference_formats.py cifar10 [--out runs/reference/data/cifar10] [--per-file 1000]
    python bench/reference_formats.py celeba [--out runs/reference/data/celeba] [--train 3000 --val 500 --test 500]

cifar10: CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html, "binary
version"): cifar-10-batches-bin/ data_batch_1.bin ... data_batch_5.bin and test_batch.bin, each
a run of 3073-byte records, a label byte then the 32x32 red plane, green, blue. The images are
not noise, so that a model and the quality metrics' classifier have something to learn: each
class is one shape (disc, square, triangle, ring, cross, bars, ...) in its own hue, jittered in
place, size and brightness, over a dim textured background. Same seed, same bytes.

celeba: CelebA's aligned and cropped layout (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html):
img_align_celeba/000001.jpg ... as 178x218 JPEGs, list_eval_partition.txt ("000001.jpg 0" a line:
0 train, 1 val, 2 test, in that order as in the release) and list_attr_celeba.txt (the count, the
real 40 attribute names, rows of 1 and -1, a positive value right-aligned in two columns as
shipped). The faces are drawn: a skin-toned oval centred where CelebA centres its faces, hair
above it, eyes, a nose, and a mouth. Four attributes are what the picture shows: Smiling (a thick
upturned arc, against a flat line), Eyeglasses (dark rings joined by a bridge), and the hair
colour (Black_Hair, Blond_Hair, Brown_Hair); the other 36 are -1. So a label_attribute run on
Smiling or Eyeglasses has a label the classifier can see.

The reference runs (make results-cifar10, make results-celeba) then read them through the cifar10
and celeba sources, train a model on them with gensweep run, and report its losses and
sample-quality figures: the data path end to end, not a CIFAR-10 or CelebA result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32
SHAPES = ("disc", "square", "triangle", "ring", "cross", "bars", "diamond", "dots", "frame", "stripes")
RECORD = 1 + 3 * SIDE * SIDE  # CIFAR-10: label byte + 3072 pixel bytes


def draw(label: int, rng: np.random.Generator) -> np.ndarray:
    """One (32, 32, 3) RGB uint8 image of class `label`."""
    background = rng.integers(0, 60, 3).astype(np.float32)
    image = np.clip(background + rng.normal(0, 12, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    hue = int(label * 18)  # OpenCV hues run 0-179: ten classes, ten hues
    colour = cv2.cvtColor(np.uint8([[[hue, 220, int(rng.integers(170, 256))]]]), cv2.COLOR_HSV2RGB)[0, 0]
    colour = tuple(int(c) for c in colour)
    cx, cy = (int(v) for v in rng.integers(11, 21, 2))
    r = int(rng.integers(6, 11))
    shape = SHAPES[label]
    if shape == "disc":
        cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif shape == "triangle":
        points = np.int32([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]])
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(image, (cx, cy), r, colour, 2, cv2.LINE_AA)
    elif shape == "cross":
        cv2.line(image, (cx - r, cy - r), (cx + r, cy + r), colour, 3, cv2.LINE_AA)
        cv2.line(image, (cx - r, cy + r), (cx + r, cy - r), colour, 3, cv2.LINE_AA)
    elif shape == "bars":
        for dx in (-r, 0, r):
            cv2.line(image, (cx + dx, cy - r), (cx + dx, cy + r), colour, 2)
    elif shape == "diamond":
        points = np.int32([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]])
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    elif shape == "dots":
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            cv2.circle(image, (cx + dx * r // 2, cy + dy * r // 2), max(2, r // 3), colour, -1, cv2.LINE_AA)
    elif shape == "frame":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, 2)
    else:  # stripes: horizontal
        for dy in range(-r, r + 1, 4):
            cv2.line(image, (cx - r, cy + dy), (cx + r, cy + dy), colour, 1)
    return image


def cifar10_records(count: int, rng: np.random.Generator) -> bytes:
    labels = rng.integers(0, 10, count)
    records = np.empty((count, RECORD), np.uint8)
    for index, label in enumerate(labels):
        records[index, 0] = label
        records[index, 1:] = draw(int(label), rng).transpose(2, 0, 1).reshape(-1)  # R plane, G, B
    return records.tobytes()


def write_cifar10(out: Path, per_file: int, seed: int = 0) -> Path:
    folder = out / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        (folder / name).write_bytes(cifar10_records(per_file, rng))
    print(f"{folder}: {len(names)} files of {per_file} records ({5 * per_file} train, {per_file} test images)")
    return folder


# CelebA's list_attr_celeba.txt header, in its order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
FACE_WIDTH, FACE_HEIGHT = 178, 218  # img_align_celeba's size
HAIR = {"Black_Hair": (25, 20, 20), "Brown_Hair": (100, 60, 30), "Blond_Hair": (225, 195, 110)}  # RGB


def draw_face(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, bool]]:
    """One (218, 178, 3) RGB uint8 face and the attributes it shows."""
    shown = {"Smiling": bool(rng.random() < 0.5), "Eyeglasses": bool(rng.random() < 0.3)}
    hair = str(rng.choice(list(HAIR)))
    shown |= {name: name == hair for name in HAIR}
    background = rng.integers(60, 200, 3).astype(np.float32)
    image = np.clip(background + rng.normal(0, 8, (FACE_HEIGHT, FACE_WIDTH, 3)), 0, 255).astype(np.uint8)
    # CelebA's alignment puts the eyes near row 112 and the face in the centred 178x178 square.
    cx, cy = FACE_WIDTH // 2 + int(rng.integers(-6, 7)), 122 + int(rng.integers(-6, 7))
    half_width, half_height = int(rng.integers(48, 60)), int(rng.integers(62, 74))
    skin = tuple(int(c) for c in np.clip(np.array([225, 180, 150]) * rng.uniform(0.6, 1.05), 0, 255))
    hair_colour = tuple(int(c) for c in np.clip(np.array(HAIR[hair]) * rng.uniform(0.85, 1.15), 0, 255))
    cv2.ellipse(image, (cx, cy - 12), (half_width + 10, half_height + 8), 0, 0, 360, hair_colour, -1, cv2.LINE_AA)
    cv2.ellipse(image, (cx, cy), (half_width, half_height), 0, 0, 360, skin, -1, cv2.LINE_AA)
    eye_y, eye_dx = cy - 12, int(half_width * 0.45)
    for side in (-1, 1):
        cv2.ellipse(image, (cx + side * eye_dx, eye_y), (9, 5), 0, 0, 360, (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(image, (cx + side * eye_dx, eye_y), 4, (40, 30, 20), -1, cv2.LINE_AA)
    if shown["Eyeglasses"]:
        for side in (-1, 1):
            cv2.circle(image, (cx + side * eye_dx, eye_y), 17, (15, 15, 15), 6, cv2.LINE_AA)
        cv2.line(image, (cx - eye_dx + 17, eye_y), (cx + eye_dx - 17, eye_y), (15, 15, 15), 6, cv2.LINE_AA)
    darker = tuple(int(c * 0.75) for c in skin)
    cv2.line(image, (cx, eye_y + 8), (cx - 5, cy + 18), darker, 4, cv2.LINE_AA)  # the nose
    mouth_y, mouth_half = cy + 38, int(half_width * 0.5)
    lips = (150, 40, 50)
    if shown["Smiling"]:  # the lower half of an ellipse: corners up, middle down
        cv2.ellipse(image, (cx, mouth_y - 8), (mouth_half, 16), 0, 0, 180, lips, 9, cv2.LINE_AA)
    else:
        cv2.line(image, (cx - mouth_half + 8, mouth_y), (cx + mouth_half - 8, mouth_y), lips, 7, cv2.LINE_AA)
    return image, shown


def write_celeba(out: Path, train: int, val: int, test: int, seed: int = 0) -> Path:
    """CelebA's layout under out; the faces are JPEGs as CelebA's are (quality 95, OpenCV's
    encoder), so the source decodes real JPEG artefacts. Same seed, same files."""
    images = out / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    partitions = [0] * train + [1] * val + [2] * test  # the release lists train, then val, then test
    names = [f"{index:06d}.jpg" for index in range(1, len(partitions) + 1)]
    rows = []
    for name in names:
        image, shown = draw_face(rng)
        if not cv2.imwrite(str(images / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"{images / name}: could not be written")
        rows.append(name + "".join(f" {1 if shown.get(attribute) else -1:2d}" for attribute in CELEBA_ATTRIBUTES))
    (out / "list_eval_partition.txt").write_text("".join(f"{name} {part}\n" for name, part in zip(names, partitions)))
    # As shipped: the count, the names (with a trailing space), then a row an image.
    (out / "list_attr_celeba.txt").write_text(f"{len(names)}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "\n".join(rows) + "\n")
    print(f"{out}: {len(names)} faces of {FACE_WIDTH}x{FACE_HEIGHT} in {images.name}/ ({train} train, {val} val, {test} test)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="format", required=True)
    cifar = commands.add_parser("cifar10", help="CIFAR-10 binary batches of drawn shapes")
    cifar.add_argument("--out", type=Path, default=ROOT / "runs/reference/data/cifar10")
    cifar.add_argument("--per-file", type=int, default=1000, help="records in each of the six files")
    celeba = commands.add_parser("celeba", help="CelebA's layout: drawn faces as JPEGs, its split and attribute files")
    celeba.add_argument("--out", type=Path, default=ROOT / "runs/reference/data/celeba")
    celeba.add_argument("--train", type=int, default=3000, help="faces in partition 0")
    celeba.add_argument("--val", type=int, default=500, help="faces in partition 1")
    celeba.add_argument("--test", type=int, default=500, help="faces in partition 2")
    args = parser.parse_args()
    if args.format == "cifar10":
        write_cifar10(args.out, args.per_file)
    else:
        write_celeba(args.out, args.train, args.val, args.test)


if __name__ == "__main__":
    main()
