"""export/device_ring.py on CPU tensors: the GPU window model's ring buffer gathers exactly the
frames the pure windowing logic names, into fresh memory."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.device_ring import DeviceRing

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("denoise_window_windowing",
                                               ROOT / "model_repository/denoise_window/1/windowing.py")
windowing = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(windowing)


@pytest.mark.parametrize("length", [1, 2, 3, 8])
def test_gathers_the_windows_of_the_pure_windower(length):
    ring, pure = DeviceRing(5, (4, 6, 3), device="cpu"), windowing.StreamWindower(5)

    def check(w, known_length):  # same indices as StreamWindower._emit
        got = ring.gather(windowing.window_indices(w.index, 5, known_length))
        np.testing.assert_array_equal(got[0].numpy(), w.planes[0])

    for i in range(length):
        frame = np.full((4, 6, 3), i, np.uint8)
        ring.push(torch.from_numpy(frame))
        for w in pure.push(frame):
            check(w, ring.received)
    for w in pure.finish():
        check(w, length)


def test_window_is_a_copy_not_a_view_of_the_ring():
    ring = DeviceRing(3, (2, 2, 3), device="cpu")
    for i in range(3):
        ring.push(torch.full((2, 2, 3), i, dtype=torch.uint8))
    window = ring.gather([0, 1, 2])
    ring.push(torch.full((2, 2, 3), 9, dtype=torch.uint8))  # overwrites slot 0
    assert window[0, :, 0, 0, 0].tolist() == [0, 1, 2]


def test_errors_name_the_frame_and_shapes():
    ring = DeviceRing(3, (2, 2, 3), device="cpu")
    with pytest.raises(ValueError, match=r"frame 0 is torch.uint8 \[2, 3, 3\]"):
        ring.push(torch.zeros((2, 3, 3), dtype=torch.uint8))
    for i in range(4):
        ring.push(torch.zeros((2, 2, 3), dtype=torch.uint8))
    with pytest.raises(IndexError, match=r"frames \[0\] are not in the ring \(it holds 1..3\)"):
        ring.gather([0, 1, 2])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda():
    ring = DeviceRing(5, (8, 8, 3))
    for i in range(5):
        ring.push(torch.full((8, 8, 3), i, dtype=torch.uint8).pin_memory())
    window = ring.gather([1, 0, 2, 3, 4])
    assert window.is_cuda and window[0, :, 0, 0, 0].tolist() == [1, 0, 2, 3, 4]
