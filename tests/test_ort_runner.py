"""The <task>_net Python-backend logic (model_repository/denoise_net/1/ort_runner.py) without
Triton: validation, stacking of equal shapes, splitting, and per-request errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from export.repository import load_model_code

ort_runner = load_model_code("denoise_net", "ort_runner")


def centre_frame_onnx(path: Path, masked: bool) -> Path:
    """A stand-in network with the real I/O contract: RESTORED = the window's centre frame."""
    window = helper.make_tensor_value_info("WINDOW", TensorProto.UINT8, ["batch", 5, "height", "width", 3])
    inputs = [window]
    if masked:
        inputs.append(helper.make_tensor_value_info("MASK_WINDOW", TensorProto.UINT8, ["batch", 5, "height", "width", 1]))
    out = helper.make_tensor_value_info("RESTORED", TensorProto.UINT8, ["batch", "height", "width", 3])
    index = helper.make_tensor("centre", TensorProto.INT64, [], [2])
    graph = helper.make_graph([helper.make_node("Gather", ["WINDOW", "centre"], ["RESTORED"], axis=1)],
                              "centre", inputs, [out], initializer=[index])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return ort_runner.OrtRunner(centre_frame_onnx(tmp_path_factory.mktemp("ort") / "m.onnx", False), 1)


@pytest.fixture(scope="module")
def masked_runner(tmp_path_factory):
    return ort_runner.OrtRunner(centre_frame_onnx(tmp_path_factory.mktemp("ort") / "m.onnx", True), 1)


def window(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 5, h, w, 3), dtype=np.uint8)


def test_specs_come_from_the_onnx_graph(runner, masked_runner):
    assert runner.input_names == ["WINDOW"] and runner.output_name == "RESTORED"
    assert masked_runner.input_names == ["WINDOW", "MASK_WINDOW"]
    assert runner.specs[0].dims == ("batch", 5, "height", "width", 3)


def test_equal_shapes_share_one_call_and_split_back(runner):
    calls = []

    def run(feeds):
        calls.append(feeds["WINDOW"].shape)
        return runner.run(feeds)

    requests = [{"WINDOW": window(1, 37, 41, 1)}, {"WINDOW": window(2, 37, 41, 2)},
                {"WINDOW": window(1, 20, 30, 3)}, {"WINDOW": window(1, 37, 41, 4)}]
    results = ort_runner.run_requests(run, requests, runner.specs)
    assert sorted(calls) == sorted([(4, 5, 37, 41, 3), (1, 5, 20, 30, 3)])
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result, request["WINDOW"][:, 2])


@pytest.mark.parametrize("bad, words", [
    (lambda: window(1, 8, 8).astype(np.float32), ["WINDOW", "float32", "[1, 5, 8, 8, 3]"]),
    (lambda: window(1, 8, 8)[0], ["WINDOW", "rank 5", "[5, 8, 8, 3]"]),
    (lambda: window(1, 8, 8)[:, :4], ["WINDOW", "axis 1 must be 5", "[1, 4, 8, 8, 3]"]),
    (lambda: window(1, 8, 8)[..., :2], ["WINDOW", "axis 4 must be 3", "[1, 5, 8, 8, 2]"]),
    (lambda: None, ["missing", "WINDOW"]),
])
def test_a_bad_request_gets_its_own_error(runner, bad, words):
    good = {"WINDOW": window(1, 8, 8, 5)}
    results = runner.execute([good, {"WINDOW": bad()}, good])
    assert isinstance(results[1], str) and all(w in results[1] for w in words), results[1]
    for result in (results[0], results[2]):
        np.testing.assert_array_equal(result, good["WINDOW"][:, 2])


def test_mask_must_match_the_window(masked_runner):
    frames = window(1, 16, 16)
    mask = np.zeros((1, 5, 16, 12, 1), np.uint8)
    error = masked_runner.execute([{"WINDOW": frames, "MASK_WINDOW": mask}])[0]
    assert "MASK_WINDOW" in error and "width is 12" in error and "16 in WINDOW" in error
    ok = masked_runner.execute([{"WINDOW": frames, "MASK_WINDOW": np.zeros((1, 5, 16, 16, 1), np.uint8)}])[0]
    np.testing.assert_array_equal(ok, frames[:, 2])


def test_a_runtime_failure_fails_only_its_request(runner):
    def run(feeds):  # fails on any batch that contains the poisoned item (first pixel 7)
        if (feeds["WINDOW"][:, 0, 0, 0, 0] == 7).any():
            raise RuntimeError("poisoned input\nsecond line")
        return feeds["WINDOW"][:, 2]

    good, bad = window(1, 8, 8, 1), window(1, 8, 8, 2)
    good[0, 0, 0, 0, 0], bad[0, 0, 0, 0, 0] = 1, 7
    results = ort_runner.run_requests(run, [{"WINDOW": good}, {"WINDOW": bad}, {"WINDOW": good}], runner.specs)
    assert results[1] == "inference failed on WINDOW shape [1, 5, 8, 8, 3]: poisoned input"
    np.testing.assert_array_equal(results[0], good[:, 2])
    np.testing.assert_array_equal(results[2], good[:, 2])


def test_threads_parameter():
    assert ort_runner.resolve_threads("0") == len(os.sched_getaffinity(0))
    assert ort_runner.resolve_threads("") == len(os.sched_getaffinity(0))
    assert ort_runner.resolve_threads("3") == 3
    cores = len(os.sched_getaffinity(0))
    assert ort_runner.resolve_threads("0", instances=2) == max(1, cores // 2)
    assert ort_runner.resolve_threads("0", instances=cores + 1) == 1  # never zero threads
    assert ort_runner.resolve_threads("3", instances=2) == 3  # an explicit count is per instance
    for bad in ("-1", "two"):
        with pytest.raises(ValueError, match="intra_op_threads"):
            ort_runner.resolve_threads(bad)


def test_memory_arena_parameter(tmp_path):
    assert ort_runner.resolve_flag("cpu_memory_arena", "true") and ort_runner.resolve_flag("cpu_memory_arena", "")
    assert not ort_runner.resolve_flag("cpu_memory_arena", "False")
    with pytest.raises(ValueError, match="cpu_memory_arena must be true or false, got 'sometimes'"):
        ort_runner.resolve_flag("cpu_memory_arena", "sometimes")
    onnx = centre_frame_onnx(tmp_path / "m.onnx", False)
    for arena in (True, False):
        runner = ort_runner.OrtRunner(onnx, 1, memory_arena=arena)
        assert runner.session.get_session_options().enable_cpu_mem_arena is arena


def test_missing_onnx_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make engine"):
        ort_runner.OrtRunner(tmp_path / "model.onnx", 1)
