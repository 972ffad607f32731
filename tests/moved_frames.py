"""Photographs moved by a known matrix, for the alignment accuracy matrix.

Independent of alignment/synthetic.py on purpose (scipy and scikit-image, never OpenCV's warp):
a method tuned on our own generator's resampling must not be graded by it. Pure translations
are Fourier shifts (exact band-limited sub-pixel moves); rotation and scale are cubic-spline
resamplings by scipy.ndimage.affine_transform (rotate: up to 1 degree and a shift; zoom: that
and up to 1% of scale). Every frame is cut from the middle of a larger
view, so a moved frame shows real content at its edges, not a wrapped or padded border.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import ndimage

from alignment import methods
from alignment.records import corner_errors

MARGIN = 24  # view pixels kept around a frame: more than the largest shift and rotation reach

# One photograph a kind of content; all ship with scikit-image (no download).
PHOTOS = {
    "camera": "scene",  # a man, a tripod, sky and grass: the generic photograph
    "astronaut": "face",
    "text": "text",  # black print on a page: thin strokes, a flat background
    "brick": "texture",  # a regular wall: repeats every few tens of pixels
    "grass": "texture",
    "moon": "low contrast",  # grey on grey: a standard deviation of 13 grey levels
    "rocket": "landscape",
}
MOTIONS = ("shift", "rotate", "zoom")  # zoom: rotation and scale, which a euclidean model cannot hold
CONDITIONS = ("clean", "noise 2", "noise 6", "drift")  # additive noise: sigma in grey levels
DRIFT = 0.3  # brightness and contrast move +-30% across the sequence (the weather)


@dataclass(frozen=True)
class MovedFrame:
    image: np.ndarray  # (H, W) uint8
    truth: np.ndarray  # (3, 3): this frame's pixel -> the reference's pixel


def view(photo: str, size: int) -> np.ndarray:
    """The photograph as gray float64, its middle square resized to size + 2 * MARGIN."""
    from skimage import color, data, transform

    image = getattr(data, photo)()
    if image.ndim == 3:
        image = color.rgb2gray(image) * 255.0
    image = image.astype(np.float64)
    side = min(image.shape)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = image[top : top + side, left : left + side]
    target = size + 2 * MARGIN
    return transform.resize(square, (target, target), order=3, anti_aliasing=side > target, preserve_range=True)


def _shifted(scene: np.ndarray, dx: float, dy: float, size: int) -> np.ndarray:
    # fourier_shift: output(p) = input(p - shift), exact for a band-limited image.
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(scene), (dy, dx))).real
    return moved[MARGIN : MARGIN + size, MARGIN : MARGIN + size]


def _resampled(scene: np.ndarray, frame_to_scene: np.ndarray, size: int) -> np.ndarray:
    # affine_transform works in (row, column): swap x and y of the (x, y) matrix.
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], float)
    rc = swap @ frame_to_scene @ swap
    return ndimage.affine_transform(scene, rc[:2, :2], rc[:2, 2], output_shape=(size, size), order=3, mode="reflect")


def sequence(photo: str, motion: str, condition: str, frames: int, size: int = 256, seed: int = 0,
             max_shift: float = 4.0, max_angle: float = 1.0, max_zoom: float = 0.01) -> list[MovedFrame]:
    """Frame 0 is the reference (unmoved, unlit, noiseless); frames 1.. are moved by known matrices."""
    rng = np.random.default_rng(seed)
    scene = view(photo, size)
    to_reference = np.array([[1, 0, -MARGIN], [0, 1, -MARGIN], [0, 0, 1]], float)  # scene -> reference pixel
    result = []
    for index in range(frames):
        if index == 0:
            frame_to_scene = np.linalg.inv(to_reference)
            image = scene[MARGIN : MARGIN + size, MARGIN : MARGIN + size]
        elif motion == "shift":
            dx, dy = rng.uniform(-max_shift, max_shift, 2)
            image = _shifted(scene, dx, dy, size)
            frame_to_scene = np.array([[1, 0, MARGIN - dx], [0, 1, MARGIN - dy], [0, 0, 1]], float)
        else:
            angle = np.deg2rad(rng.uniform(-max_angle, max_angle))
            zoom = 1 + rng.uniform(-max_zoom, max_zoom) if motion == "zoom" else 1.0
            dx, dy = rng.uniform(-max_shift, max_shift, 2)
            centre = MARGIN + (size - 1) / 2
            cos, sin = zoom * np.cos(angle), zoom * np.sin(angle)
            # about the frame's centre, then shifted: frame pixel -> scene pixel
            linear = np.array([[cos, -sin], [sin, cos]])
            offset = np.array([centre + dx, centre + dy]) - linear @ np.array([(size - 1) / 2, (size - 1) / 2])
            frame_to_scene = np.array([[cos, -sin, offset[0]], [sin, cos, offset[1]], [0, 0, 1]])
            image = _resampled(scene, frame_to_scene, size)
        if index and condition.startswith("noise"):
            image = image + rng.normal(0, float(condition.split()[1]), image.shape)
        if index and condition == "drift":
            # From -30% to +30% over the sequence: contrast about the mean, and brightness.
            step = -DRIFT + 2 * DRIFT * (index - 1) / max(frames - 2, 1)
            mean = image.mean()
            image = mean * (1 + step) + (image - mean) * (1 - step)
        result.append(MovedFrame(np.clip(image, 0, 255).round().astype(np.uint8), to_reference @ frame_to_scene))
    return result


# -- the matrix: each method at its defaults on each cell -----------------------------------------
def aligners():
    return {
        "ecc": methods.align_ecc,
        "fft": methods.align_fft,
        "features": methods.align_features,
        "features-homography": partial(methods.align_features, motion="homography"),
        "features-orb": partial(methods.align_features, detector="orb"),  # `gensweep align`'s detector today
    }


METHODS = ("ecc", "fft", "features")  # at their defaults: ecc euclidean, fft translation, features SIFT partial
GOALS = {"ecc": 0.05, "fft": 0.1, "features": 0.5, "features-homography": 0.5, "features-orb": 0.5}  # median corner error, px; p95 within twice this


def cells(method: str) -> list[tuple[str, str, str]]:
    """(photo, motion, condition) a method is graded on: what its default model can hold (fft a
    translation, ecc a euclidean motion, features a similarity or more)."""
    motions = {"fft": ("shift",), "ecc": ("shift", "rotate")}.get(method, MOTIONS)
    return [(photo, motion, condition) for photo in PHOTOS for motion in motions for condition in CONDITIONS]


def measure(method: str, frames: list[MovedFrame]) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Corner errors of the frames the method aligned, and the reasons of those it failed."""
    align = aligners()[method]
    reference = frames[0].image
    if method.startswith("features"):  # the reference's keypoints once, as `gensweep align` does
        detector = align.keywords.get("detector", "sift") if isinstance(align, partial) else "sift"
        align = partial(align, reference_features=methods.describe(reference, detector))
    height, width = reference.shape
    errors, failures = [], []
    for frame in frames[1:]:
        result = align(frame.image, reference)
        if result.ok:
            errors.append(corner_errors(result.matrix, frame.truth, width, height))
        else:
            failures.append(result.reason)
    return tuple(errors), tuple(failures)
