"""The served `inpaint` ensemble: frames and masks streamed together over gRPC to a real
tritonserver (the session fixture serves every task with a shipped checkpoint), compared with the
network in-process; pixels outside the mask come back bit-exact."""
from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.repository import load_model_code
from training import contract
from training.checkpoint import load_checkpoint
from training.data import load_clip
from training.evaluate import restore
from training.masks import random_mask_window

ROOT = Path(__file__).resolve().parents[1]
window_indices = load_model_code("denoise_window", "windowing").window_indices

TASK = contract.get_task("inpaint")
needs_inpaint = pytest.mark.skipif(
    not (ROOT / "training" / "checkpoints" / "inpaint.pt").is_file() or not (ROOT / "model_repository" / "inpaint").is_dir(),
    reason="inpaint ships no checkpoint/model_repository entry yet",
)


def _io(model: str, kind: str) -> dict[str, tuple[str, list[int]]]:
    config = text_format.Parse((ROOT / "model_repository" / model / "config.pbtxt").read_text(), mc.ModelConfig())
    return {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in getattr(config, kind)}


@needs_inpaint
def test_window_model_windows_the_mask_beside_the_frame():
    assert _io(TASK.window_model, "input") == {contract.FRAME: ("TYPE_UINT8", [-1, -1, 3]),
                                              contract.MASK: ("TYPE_UINT8", [-1, -1, 1])}
    assert _io(TASK.window_model, "output")[contract.MASK_WINDOW] == ("TYPE_UINT8", [TASK.net_frames, -1, -1, 1])
    for name in ("model.py", "windowing.py"):  # one window model for every task
        assert (ROOT / "model_repository" / TASK.window_model / "1" / name).resolve() == \
            (ROOT / "model_repository" / "denoise_window" / "1" / name).resolve()


def _frames_and_masks(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Real frames (carphone, 144x176) and moving masks (count, H, W, 1), 255 = fill."""
    frames = load_clip("carphone_pristine.mp4", max_frames=count)
    masks = random_mask_window(count, *frames.shape[1:3], np.random.default_rng(5))
    return frames, masks[..., None]


def in_process(frames: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
    """Each frame restored through training's serving path: its held window (mirrored at the
    stream's ends as the window model does), propagation, then the network."""
    model, _ = load_checkpoint(ROOT / "training" / "checkpoints" / "inpaint.pt")
    idx = [window_indices(centre, TASK.window, len(frames)) for centre in range(len(frames))]
    return list(restore(model, frames[idx], masks=masks[idx]))


def _stream(url: str, frames: np.ndarray, masks: np.ndarray, seq: int) -> dict[int, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    responses: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    for i, (frame, mask) in enumerate(zip(frames, masks)):
        inputs = []
        for name, array in ((contract.FRAME, frame), (contract.MASK, mask)):
            inp = grpcclient.InferInput(name, [1, *array.shape], "UINT8")
            inp.set_data_from_numpy(np.ascontiguousarray(array[None]))
            inputs.append(inp)
        client.async_stream_infer(TASK.name, inputs, request_id=str(i), sequence_id=seq, sequence_start=i == 0,
                                  sequence_end=i == len(frames) - 1, enable_empty_final_response=True)
    results, finals = {}, 0
    while finals < len(frames):
        result, error = responses.get(timeout=60)
        assert error is None, error
        if result.as_numpy(contract.RESTORED) is not None:
            results[int(result.as_numpy(contract.FRAME_INDEX).ravel()[0])] = result.as_numpy(contract.RESTORED)[0]
        finals += result.get_response().parameters["triton_final_response"].bool_param
    client.stop_stream()
    client.close()
    return results


@needs_inpaint
@pytest.mark.server
def test_served_inpainting_matches_in_process_and_keeps_unmasked_pixels(triton_server):
    frames, masks = _frames_and_masks(7)
    served = _stream(triton_server.grpc_url, frames, masks, seq=701)
    assert sorted(served) == list(range(len(frames)))
    for i, expected in enumerate(in_process(frames, masks)):
        keep = masks[i, ..., 0] == 0
        assert np.array_equal(served[i][keep], frames[i][keep]), f"frame {i}: a pixel outside the mask changed"
        diff = np.abs(served[i].astype(int) - expected.astype(int)).max()
        assert diff <= 1, f"frame {i}: served differs from in-process PyTorch by {diff} grey levels"
