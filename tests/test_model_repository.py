"""The committed model repository agrees with training/contract.py (no server needed)."""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import triton_config
from training import contract

REPO = Path(__file__).resolve().parents[1] / "model_repository"
TASKS = [t for t in contract.TASKS.values() if (REPO / t.name).is_dir()]


def load_config(name: str) -> mc.ModelConfig:
    return text_format.Parse((REPO / name / "config.pbtxt").read_text(), mc.ModelConfig())


def dims(config: mc.ModelConfig, kind: str) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in getattr(config, kind)}


def test_every_directory_is_a_model():
    # Triton refuses to start (model-control-mode none) on any directory that is not a model.
    for d in REPO.iterdir():
        if d.is_dir():
            assert (d / "config.pbtxt").is_file(), f"{d} is not a model: tritonserver would fail to start"
            assert load_config(d.name).name == d.name


def test_committed_configs_are_the_generated_ones():
    # Every config.pbtxt is written by export/triton_config.py; a hand edit would be lost.
    generated = triton_config.committed_configs(REPO)
    assert sorted(generated) == sorted(REPO / name / "config.pbtxt" for t in TASKS
                                       for name in (t.name, t.window_model, t.net_model))
    stale = [str(path.relative_to(REPO)) for path, text in generated.items() if path.read_text() != text]
    assert stale == [], "regenerate with: python -m export.triton_config"
    assert triton_config.main(["--check", "--repository", str(REPO)]) == 0


def test_window_limits_are_set_and_the_net_queue_policy_is_opt_in(tmp_path):
    for task in TASKS:
        window = load_config(task.window_model).parameters
        assert int(window["max_side"].string_value) == contract.MAX_SIDE
        assert 1 <= int(window["max_streams"].string_value) <= triton_config.MAX_STREAMS_CEILING
        assert int(window["max_held_mib"].string_value) > 0
        # No queue policy unless asked for: any brings Triton 2.51's ~500 ms stalls (export/triton_config.py).
        assert not load_config(task.net_model).dynamic_batching.HasField("default_queue_policy")
        policy = triton_config.net_config(task, triton_config.NetOptions(queue_timeout_s=300)).dynamic_batching.default_queue_policy
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT and policy.default_timeout_microseconds == 300_000_000
        assert policy.allow_timeout_override and policy.max_queue_size == 0  # a full queue hangs ensembles in 2.51
    with pytest.raises(ValueError, match="queue_timeout_s"):
        triton_config.NetOptions(queue_timeout_s=-1)
    with pytest.raises(ValueError, match="max_streams"):
        triton_config.WindowOptions(max_streams=257)
    # --check notices a hand edit.
    edited = tmp_path / "repo"
    for name in ("denoise", "denoise_window", "denoise_net"):
        (edited / name).mkdir(parents=True)
        (edited / name / "config.pbtxt").write_text((REPO / name / "config.pbtxt").read_text())
    path = edited / "denoise_net" / "config.pbtxt"
    path.write_text(path.read_text().replace("max_queue_delay_microseconds: 500", "max_queue_delay_microseconds: 501"))
    assert triton_config.main(["--check", "--repository", str(edited)]) == 1


def test_at_least_denoise_is_served():
    assert "denoise" in [t.name for t in TASKS]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_ensemble_wires_window_to_net(task):
    config = load_config(task.name)
    assert config.platform == "ensemble"
    inputs = {contract.FRAME: ("TYPE_UINT8", [-1, -1, 3])}
    if task.masked:
        inputs[contract.MASK] = ("TYPE_UINT8", [-1, -1, 1])
    assert dims(config, "input") == inputs
    assert dims(config, "output") == {contract.RESTORED: ("TYPE_UINT8", [-1, -1, 3]), contract.FRAME_INDEX: ("TYPE_INT64", [1])}
    steps = config.ensemble_scheduling.step
    assert [s.model_name for s in steps] == [task.window_model, task.net_model]
    for plane in task.net_inputs:  # WINDOW, and MASK_WINDOW or BLUR_KERNEL
        assert steps[0].output_map[plane] == steps[1].input_map[plane]
    assert set(steps[1].input_map) == set(task.net_inputs)
    assert (REPO / task.name / "1").is_dir(), "an ensemble needs an (empty) version directory"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_window_model_matches_contract(task):
    config = load_config(task.window_model)
    assert config.backend == "python" and config.model_transaction_policy.decoupled
    # It holds `window` frames and sends the net's; it windows and nothing more (no per-pixel work:
    # inpaint's propagation runs in its net's graph).
    assert int(config.parameters["window"].string_value) == task.window >= task.net_frames
    assert "propagate" not in config.parameters
    outputs = dims(config, "output")
    assert outputs == {**{name: (f"TYPE_{spec.dtype}", list(spec.dims)) for name, spec in task.net_inputs.items()},
                       contract.FRAME_INDEX: ("TYPE_INT64", [1])}
    controls = {c.name: c.control[0].kind for c in config.sequence_batching.control_input}
    assert controls == {"START": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_START,
                        "END": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_END,
                        "CORRID": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_CORRID}
    idle_us = config.sequence_batching.max_sequence_idle_microseconds
    assert idle_us == int(float(config.parameters["idle_timeout_s"].string_value) * 1e6)
    assert config.max_batch_size == load_config(task.name).max_batch_size <= load_config(task.net_model).max_batch_size


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_net_model_matches_contract(task):
    config = load_config(task.net_model)
    inputs = {name: (f"TYPE_{spec.dtype}", list(spec.dims)) for name, spec in task.net_inputs.items()}
    assert dims(config, "input") == inputs
    assert dims(config, "output") == {contract.RESTORED: ("TYPE_UINT8", [-1, -1, 3])}
    assert config.max_batch_size == contract.CPU_BATCH <= contract.MAX_BATCH_SIZE
    assert [group.count for group in config.instance_group] == [triton_config.NetOptions.cpu_instances]
    assert config.dynamic_batching.preserve_ordering
    assert config.HasField("dynamic_batching")


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_net_declares_the_largest_side_it_takes(task):
    # The client reads this to tile larger frames; the TensorRT profile is built to the same value.
    assert int(load_config(task.net_model).parameters["max_side"].string_value) == contract.MAX_SIDE
