"""Frame-to-reference registration: numpy in, numpy out, no Ray.

Every method returns an Alignment whose 3x3 `matrix` maps the frame's pixel coordinates
(OpenCV's convention: x to the right, y down, pixel centres at integers) to the reference's,
so `warp(frame, matrix)` lays the frame over the reference. Methods fail soft: a frame they
cannot align comes back with ok=False and the reason, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

IDENTITY = np.eye(3)
FEATURE_MOTIONS = ("homography", "affine", "partial")
ECC_MOTIONS = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}
BLANK_STD = 1.0  # grey levels: below this a frame has nothing to register on


@dataclass(frozen=True)
class Alignment:
    matrix: np.ndarray  # (3, 3) float64, frame pixel -> reference pixel, h22 = 1
    score: float  # inlier ratio (features), correlation (ecc), peak response (fft)
    ok: bool
    reason: str = ""

    @staticmethod
    def failed(reason: str) -> Alignment:
        return Alignment(IDENTITY.copy(), 0.0, False, reason)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any 8/16-bit or float image, gray or colour -> float32 gray."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image.astype(np.float32)


def warp(frame: np.ndarray, matrix: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame resampled onto the reference's pixel grid (size: (width, height))."""
    height, width = frame.shape[:2]
    size = size or (width, height)
    return cv2.warpPerspective(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _normalised(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape == (2, 3):
        matrix = np.vstack([matrix, [0, 0, 1]])
    return matrix / matrix[2, 2]


def _check_inputs(frame: np.ndarray, reference: np.ndarray) -> str:
    if frame.shape[:2] != reference.shape[:2]:
        return f"frame is {frame.shape[1]}x{frame.shape[0]}, reference {reference.shape[1]}x{reference.shape[0]}"
    if float(frame.std()) < BLANK_STD:
        return "blank frame (no texture to register on)"
    if float(reference.std()) < BLANK_STD:
        return "blank reference (no texture to register on)"
    return ""


# -- features: keypoints, ratio test, RANSAC -----------------------------------------------------
def _detector(name: str):
    if name == "orb":
        return cv2.ORB_create(nfeatures=3000), cv2.NORM_HAMMING
    if name == "sift":
        return cv2.SIFT_create(nfeatures=3000), cv2.NORM_L2
    if name == "akaze":
        return cv2.AKAZE_create(), cv2.NORM_HAMMING
    raise ValueError(f"unknown detector {name!r} (known: orb, sift, akaze)")


def describe(image: np.ndarray, detector: str = "orb", mask: np.ndarray | None = None):
    """Keypoints and descriptors of an image: computed once for a reference, reused per frame."""
    finder, _ = _detector(detector)
    gray = cv2.normalize(to_gray(image), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return finder.detectAndCompute(gray, mask)


def align_features(
    frame: np.ndarray,
    reference: np.ndarray,
    detector: str = "sift",
    motion: str = "partial",
    mask: np.ndarray | None = None,
    ratio: float = 0.75,
    min_matches: int = 12,
    reference_features=None,
) -> Alignment:
    """Keypoints (ORB, SIFT or AKAZE), Lowe's ratio test, then RANSAC for the motion model."""
    if problem := _check_inputs(frame, reference):
        return Alignment.failed(problem)
    try:
        _, norm = _detector(detector)
        ref_points, ref_descriptors = reference_features or describe(reference, detector, mask)
        points, descriptors = describe(frame, detector, mask)
        if descriptors is None or ref_descriptors is None or len(points) < min_matches:
            return Alignment.failed(f"too few keypoints ({0 if descriptors is None else len(points)})")
        pairs = cv2.BFMatcher(norm).knnMatch(descriptors, ref_descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
        if len(good) < min_matches:
            return Alignment.failed(f"too few matches ({len(good)} < {min_matches})")
        source = np.float32([points[m.queryIdx].pt for m in good])
        target = np.float32([ref_points[m.trainIdx].pt for m in good])
        if motion == "homography":
            matrix, inliers = cv2.findHomography(source, target, cv2.RANSAC, 2.0)
        elif motion == "affine":
            matrix, inliers = cv2.estimateAffine2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        elif motion == "partial":
            matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        else:
            raise ValueError(f"unknown motion {motion!r} for features (known: {', '.join(FEATURE_MOTIONS)})")
        if matrix is None:
            return Alignment.failed("RANSAC found no consistent motion")
        inlier_count = int(inliers.sum())
        if inlier_count < min_matches:
            return Alignment.failed(f"too few inliers ({inlier_count} < {min_matches})")
        return Alignment(_normalised(matrix), inlier_count / len(good), True)
    except cv2.error as error:
        return Alignment.failed(f"OpenCV: {str(error).strip().splitlines()[-1]}")


# -- ECC: intensity-based, coarse to fine ---------------------------------------------------------
def align_ecc(
    frame: np.ndarray,
    reference: np.ndarray,
    motion: str = "euclidean",
    levels: int = 3,
    iterations: int = 100,
    epsilon: float = 1e-6,
    mask: np.ndarray | None = None,
    initial: np.ndarray | None = None,
    min_score: float = 0.5,
) -> Alignment:
    """OpenCV's ECC maximisation (Evangelidis & Psarakis 2008) over an image pyramid.

    Starts from `initial` (frame -> reference) or, where that is None, from FFT phase
    correlation's translation: ECC converges from close by, and a vibrating camera's largest
    motion is its shift.
    """
    if problem := _check_inputs(frame, reference):
        return Alignment.failed(problem)
    if motion not in ECC_MOTIONS:
        raise ValueError(f"unknown motion {motion!r} for ecc (known: {', '.join(ECC_MOTIONS)})")
    frame_gray, reference_gray = to_gray(frame), to_gray(reference)
    if initial is None:
        initial = align_fft(frame_gray, reference_gray, upsample=1).matrix
    # ECC's warp maps template (reference) pixels to input (frame) pixels: the inverse of ours.
    warp_matrix = np.linalg.inv(_normalised(initial))
    scale = 2.0 ** (levels - 1)
    shrink = np.diag([1 / scale, 1 / scale, 1.0])
    warp_matrix = shrink @ warp_matrix @ np.linalg.inv(shrink)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon)
    score = 0.0
    for level in reversed(range(levels)):
        factor = 2.0**level
        size = (round(frame_gray.shape[1] / factor), round(frame_gray.shape[0] / factor))
        small_frame = cv2.resize(frame_gray, size, interpolation=cv2.INTER_AREA)
        small_reference = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
        small_mask = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        guess = warp_matrix if motion == "homography" else warp_matrix[:2]
        try:
            score, found = cv2.findTransformECC(
                small_reference, small_frame, guess.astype(np.float32), ECC_MOTIONS[motion], criteria, small_mask, 5
            )
            warp_matrix = _normalised(found)
        except cv2.error as error:
            if not level:
                return Alignment.failed(f"ECC did not converge ({str(error).strip().splitlines()[-1][:80]})")
            # A coarse level is only there to bring the start closer. Where shrinking aliased the
            # texture away (a brick wall at a quarter size) it cannot, and the finer levels go on
            # from the start it was given, rather than the frame failing.
        if level:  # up one level: the same motion in pixels twice as small
            grow = np.diag([2.0, 2.0, 1.0])
            warp_matrix = grow @ warp_matrix @ np.linalg.inv(grow)
    if score < min_score:
        return Alignment(_normalised(np.linalg.inv(warp_matrix)), float(score), False, f"correlation {score:.2f} < {min_score}")
    return Alignment(_normalised(np.linalg.inv(warp_matrix)), float(score), True)


# -- FFT phase correlation: translation, sub-pixel --------------------------------------------------
def align_fft(
    frame: np.ndarray,
    reference: np.ndarray,
    upsample: int = 20,
    window: bool = True,
    mask: np.ndarray | None = None,
    min_peak_ratio: float = 3.0,
    log_polar: bool = False,
) -> Alignment:
    """Phase correlation (Kuglin & Hines 1975): the translation, to 1/upsample of a pixel.

    log_polar: first find rotation and scale from the log-polar resampled Fourier magnitudes
    (Reddy & Chatterji 1996), where they become shifts; the frame is then turned back and the
    translation found as usual. The result is a similarity, coarser than ECC's (about 0.1 deg).

    The integer peak and its height (the score: about 1 for a match, wherever the sub-pixel
    shift splits it) come from the phase-normalised correlation; upsample > 1 refines it with
    scikit-image's matrix-multiply DFT upsampling (Guizar-Sicairos et al. 2008). The frame
    fails when its peak is not min_peak_ratio times the best other candidate shift: frames
    that match stood 10-50 times above, unrelated ones (noise, another scene) 1.1-1.4 times.
    """
    if problem := _check_inputs(frame, reference):
        return Alignment.failed(problem)
    frame_gray, reference_gray = to_gray(frame), to_gray(reference)
    rotation_scale = np.eye(3)
    if log_polar:
        rotation_scale = _rotation_and_scale(frame_gray, reference_gray, max(upsample, 1))
        frame_gray = warp(frame_gray, rotation_scale)
    if mask is not None:  # masked regions neither help nor mislead: flatten them to the mean
        keep = mask > 0
        frame_gray = np.where(keep, frame_gray, frame_gray[keep].mean()).astype(np.float32)
        reference_gray = np.where(keep, reference_gray, reference_gray[keep].mean()).astype(np.float32)
    taper = _hann(frame_gray.shape) if window else np.ones(frame_gray.shape, np.float32)
    # scipy.fft keeps float32 single precision (numpy's FFT is float64 only): 6x faster at 512x512
    reference_spectrum = scipy.fft.fft2(_tapered(reference_gray, taper))
    frame_spectrum = scipy.fft.fft2(_tapered(frame_gray, taper))
    (dy, dx), response, peak_ratio = _phase_peak(reference_spectrum, frame_spectrum)
    if upsample > 1:
        from skimage.registration import phase_cross_correlation

        # Plain cross-correlation for the sub-pixel step, as Guizar-Sicairos et al. wrote it: on
        # the synthetic sequences the phase-normalised peak sat 0.12 px off, this one 0.02 px.
        (dy, dx), _, _ = phase_cross_correlation(
            reference_spectrum, frame_spectrum, space="fourier", upsample_factor=upsample, normalization=None
        )
    matrix = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64) @ rotation_scale
    if peak_ratio < min_peak_ratio:
        return Alignment(matrix, float(response), False, f"no clear correlation peak ({peak_ratio:.1f}x the next, < {min_peak_ratio})")
    return Alignment(matrix, float(response), True)


def _hann(shape: tuple[int, int]) -> np.ndarray:
    return cv2.createHanningWindow(shape[::-1], cv2.CV_32F)


def _tapered(image: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """The image's content, faded to zero at the edges so the FFT's wrap-around adds no edge.

    The mean level comes out first (weighted as the taper weighs): tapered, it is one and the
    same fixed picture in both images, which correlates best at zero shift and pulled the
    peak toward it, by 0.24-0.29 px on a page of text and 0.32 px on the moon, photographs
    whose mean level is large beside their contrast (tests/alignment_tests/test_accuracy_matrix.py).
    """
    image = np.asarray(image, np.float32)
    level = float((image * taper).sum(dtype=np.float64) / taper.sum(dtype=np.float64))
    return (image - np.float32(level)) * taper


def _phase_peak(reference_spectrum: np.ndarray, frame_spectrum: np.ndarray) -> tuple[tuple[int, int], float, float]:
    """(dy, dx) of the phase correlation's highest 3x3 sum, that sum, and how many times it
    stands above the highest sum away from it (the peak's distinctness)."""
    cross_power = reference_spectrum * np.conj(frame_spectrum)
    cross_power /= np.maximum(np.abs(cross_power), 1e-12)
    # A sub-pixel shift splits the peak between neighbours: their 3x3 sum is the whole of it. The
    # sum is a circular convolution with a 3x3 box, so a product with its spectrum here.
    height, width = cross_power.shape
    box_rows = 1 + 2 * np.cos(2 * np.pi * np.arange(height, dtype=np.float32) / height)
    box_columns = 1 + 2 * np.cos(2 * np.pi * np.arange(width, dtype=np.float32) / width)
    summed = scipy.fft.ifft2(cross_power * np.outer(box_rows, box_columns)).real
    row, column = np.unravel_index(int(summed.argmax()), summed.shape)
    peak = float(summed[row, column])
    away = np.roll(summed, (5 - row, 5 - column), (0, 1))  # the peak moved to (5, 5) ...
    away[:11, :11] = -np.inf  # ... and its 11x11 neighbourhood left out
    shift = (row - height if row > height // 2 else row, column - width if column > width // 2 else column)
    return shift, peak, peak / max(float(away.max()), 1e-12)


def _rotation_and_scale(frame: np.ndarray, reference: np.ndarray, upsample: int) -> np.ndarray:
    """The rotation and scale about the centre that turn the frame towards the reference (3x3)."""
    from skimage.registration import phase_cross_correlation
    from skimage.transform import warp_polar

    hann = _hann(frame.shape)

    def log_polar_spectrum(image: np.ndarray) -> np.ndarray:
        # Translation changes only the phase: the magnitude sees rotation and scale alone.
        magnitude = np.log1p(np.abs(np.fft.fftshift(scipy.fft.fft2(_tapered(image, hann)))))
        polar = warp_polar(magnitude, radius=radius, output_shape=(angles, columns), scaling="log")
        return polar[: angles // 2]  # a real image's spectrum repeats after 180 degrees

    radius, angles = min(frame.shape) // 2, 1440  # a quarter of a degree per row before upsampling
    columns = 4 * radius  # log-radius steps of about 1% at 256 px: zooms of a vibrating camera are small
    (row_shift, column_shift), _, _ = phase_cross_correlation(
        log_polar_spectrum(reference), log_polar_spectrum(frame), upsample_factor=upsample, normalization=None
    )
    angle = row_shift * 360.0 / angles  # degrees, as atan2(h10, h00) of the result
    scale = np.exp(-column_shift * np.log(radius) / columns)
    centre = ((frame.shape[1] - 1) / 2, (frame.shape[0] - 1) / 2)
    return np.vstack([cv2.getRotationMatrix2D(centre, -angle, scale), [0, 0, 1]])

