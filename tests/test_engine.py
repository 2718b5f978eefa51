"""`make engine` (export/engine.py) and the config.pbtxt writer (export/triton_config.py) on CPU:
backend choice and its messages, exit status 2, re-export only when the checkpoint or the graph
source changes (in place, through the --onnx-cache shared by test repositories, or from the exports
committed beside the shipped checkpoints), and configs for both backends that Triton's own schema
accepts."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import export.engine as engine
import export.onnx_cache
import export.onnx_export
import export.shipped as shipped
from export.triton_config import NetOptions, WindowOptions, ensemble_config, net_config, render, window_config
from training.contract import BLUR_KERNEL, CPU_BATCH, MASK_WINDOW, MAX_BATCH_SIZE, RESTORED, TASKS, WINDOW
from test_export_onnx import tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NO_TRT = "TensorRT is not importable (No module named 'tensorrt')"


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def test_choose_backend():
    assert engine.choose_backend("auto", None)[0] == "tensorrt"
    backend, why = engine.choose_backend("auto", NO_TRT)
    assert backend == "onnxruntime" and NO_TRT in why and "ONNX Runtime on CPU" in why
    assert engine.choose_backend("onnxruntime", None) == ("onnxruntime", "--backend onnxruntime was requested")
    assert engine.choose_backend("tensorrt", None)[0] == "tensorrt"
    with pytest.raises(engine.BackendUnavailable, match="--backend tensorrt: TensorRT is not importable"):
        engine.choose_backend("tensorrt", NO_TRT)


def test_tensorrt_demanded_without_it_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(engine, "tensorrt_problem", lambda: NO_TRT)
    code = engine.main(["--task", "denoise", "--backend", "tensorrt", "--repository", str(tmp_path)])
    assert code == engine.EXIT_BACKEND_UNAVAILABLE == 2
    out, err = capsys.readouterr()
    assert f"--backend tensorrt: {NO_TRT}" in err
    assert f"engine: Python {sys.version.split()[0]} ({sys.executable}), no TensorRT" in out
    assert not any(tmp_path.iterdir()), "nothing may be installed when the backend is refused"


def test_ensemble_batch_follows_its_net():
    """Triton refuses an ensemble whose max_batch_size exceeds a step's: a plan with a smaller
    batch brings the ensemble down with it. On CPU every step takes one window per call
    (CPU_BATCH; the net runs in several instances instead), while a TensorRT net keeps its
    profile's batch, gathered from different streams by its dynamic batcher."""
    task = TASKS["sr4"]
    assert parse(render(ensemble_config(task, 2))).max_batch_size == 2
    assert parse(render(net_config(task, NetOptions(backend="tensorrt", max_batch=2)))).max_batch_size == 2
    assert render(ensemble_config(task)) == (ROOT / "model_repository" / task.name / "config.pbtxt").read_text()
    for task in TASKS.values():
        for config in (ensemble_config(task), window_config(task), net_config(task)):
            assert parse(render(config)).max_batch_size == CPU_BATCH
        assert parse(render(net_config(task, NetOptions(backend="tensorrt", max_batch=4)))).max_batch_size == 4


def committed_adapter(repo: Path) -> Path:
    """A repository holding the committed denoise_net adapter (no built artefacts)."""
    shutil.copytree(ROOT / "model_repository" / "denoise_net", repo / "denoise_net", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "*.json"))
    return repo


@pytest.fixture()
def cpu_only(monkeypatch):
    monkeypatch.setattr(engine, "tensorrt_problem", lambda: NO_TRT)


def test_installs_onnx_then_skips_until_the_checkpoint_changes(cpu_only, monkeypatch, capsys, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "denoise.pt", "denoise")
    repo = committed_adapter(tmp_path / "repo")
    args = ["--task", "denoise", "--checkpoint", str(checkpoint), "--repository", str(repo)]
    assert engine.main(args) == 0
    out = capsys.readouterr().out
    assert f"backend onnxruntime, because {NO_TRT}" in out and "max |diff| 0 grey level" in out
    version = repo / "denoise_net" / "1"
    stamp = json.loads((version / "model.onnx.json").read_text())
    assert (version / "model.onnx").is_file() and stamp["max_abs_diff_vs_pytorch"] <= 1
    assert parse((repo / "denoise_net" / "config.pbtxt").read_text()).backend == "python"

    def no_export(*_, **__):
        raise AssertionError("re-exported although the checkpoint did not change")

    monkeypatch.setattr(export.onnx_export, "export_checkpoint", no_export)
    start = time.perf_counter()
    assert engine.main(args + ["--cpu-memory-arena", "false", "--cpu-instances", "1"]) == 0
    assert time.perf_counter() - start < 5
    assert "not re-exported" in capsys.readouterr().out
    config = parse((repo / "denoise_net" / "config.pbtxt").read_text())
    assert config.parameters["cpu_memory_arena"].string_value == "false"
    assert [g.count for g in config.instance_group] == [1]
    with pytest.raises(SystemExit):
        engine.main(args + ["--cpu-instances", "0"])
    assert "--cpu-instances must be at least 1, got 0" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(engine, "tensorrt_problem", lambda: NO_TRT)

    tiny_checkpoint(checkpoint, "denoise", seed=1)  # new weights, same path
    assert engine.main(args) == 0
    assert "exported" in capsys.readouterr().out
    assert json.loads((version / "model.onnx.json").read_text())["checkpoint_sha256"] != stamp["checkpoint_sha256"]


def test_the_onnx_cache_serves_other_repositories_until_checkpoint_or_graph_source_change(
        cpu_only, monkeypatch, capsys, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "denoise.pt", "denoise")

    def install(name: str) -> Path:
        repo = committed_adapter(tmp_path / name)
        assert engine.main(["--task", "denoise", "--checkpoint", str(checkpoint), "--repository", str(repo),
                            "--onnx-cache", str(tmp_path / "cache")]) == 0
        return repo / "denoise_net" / "1" / "model.onnx"

    first = install("a")
    assert "parity vs PyTorch" in capsys.readouterr().out

    def no_export(*_, **__):
        raise AssertionError("re-exported although checkpoint and graph source did not change")

    monkeypatch.setattr(export.onnx_export, "export_checkpoint", no_export)
    second = install("b")
    assert "copied from" in capsys.readouterr().out
    assert second.read_bytes() == first.read_bytes()
    assert json.loads(second.with_name("model.onnx.json").read_text())["max_abs_diff_vs_pytorch"] <= 1
    # Another graph source (training/ or export/ edited) is another key, in the cache and in place.
    monkeypatch.setattr(export.onnx_cache, "graph_digest", lambda: "0" * 64)
    with pytest.raises(AssertionError, match="re-exported"):
        install("c")
    with pytest.raises(AssertionError, match="re-exported"):
        assert engine.main(["--task", "denoise", "--checkpoint", str(checkpoint),
                            "--repository", str(tmp_path / "a")]) == 0


def test_an_export_beside_the_checkpoint_is_copied_while_current_and_never_once_stale(
        cpu_only, monkeypatch, capsys, tmp_path):
    """What a fresh clone does with the exports committed beside the shipped checkpoints: copy,
    not export; and what export.shipped --check says of each way one goes stale."""
    checkpoint = tiny_checkpoint(tmp_path / "denoise.pt", "denoise")
    beside = export.onnx_cache.shipped(checkpoint)
    assert "is missing" in shipped.why_stale(checkpoint)
    engine.ensure_onnx(checkpoint, beside, TASKS["denoise"])
    assert shipped.why_stale(checkpoint) is None
    exported = beside.read_bytes()

    def no_export(*_, **__):
        raise AssertionError("exported although a current export lay beside the checkpoint")

    def install(name: str) -> Path:
        repo = committed_adapter(tmp_path / name)
        assert engine.main(["--task", "denoise", "--checkpoint", str(checkpoint), "--repository", str(repo)]) == 0
        return repo / "denoise_net" / "1" / "model.onnx"

    monkeypatch.setattr(export.onnx_export, "export_checkpoint", no_export)
    assert install("a").read_bytes() == exported
    assert f"copied from {beside}" in capsys.readouterr().out

    monkeypatch.setattr(export.onnx_cache, "graph_digest", lambda: "0" * 64)
    assert "by another graph source" in shipped.why_stale(checkpoint)
    with pytest.raises(AssertionError, match="exported although"):
        install("b")
    monkeypatch.undo()
    monkeypatch.setattr(export.onnx_export, "export_checkpoint", no_export)
    beside.write_bytes(exported + b"\0")
    assert "changed since it was exported" in shipped.why_stale(checkpoint)
    with pytest.raises(AssertionError, match="exported although"):
        install("c")
    beside.write_bytes(exported)
    tiny_checkpoint(checkpoint, "denoise", seed=1)
    assert "from another denoise.pt" in shipped.why_stale(checkpoint)
    with pytest.raises(AssertionError, match="exported although"):
        install("d")


def test_the_exports_beside_the_shipped_checkpoints_are_current(capsys):
    """A fresh clone (CI, `make demo`) exports nothing only while these are current: after a
    change to a checkpoint or to the graph source, `python -m export.shipped` must be run and
    what it writes committed."""
    assert [c.stem for c in shipped.shipped_checkpoints()] == sorted(TASKS)
    assert shipped.main(["--check"]) == 0, capsys.readouterr().err


def test_the_graph_source_is_what_the_exporter_imports():
    """The digest that keys exports covers the network and the export steps, not the training
    loop or its data pipeline (editing those must not make the committed exports stale)."""
    sources = {p.relative_to(ROOT).as_posix() for p in export.onnx_cache.graph_sources()}
    assert {"export/onnx_export.py", "export/uint8_edges.py", "training/network.py", "training/flow.py",
            "training/propagation.py", "training/deconvolution.py", "training/processing.py",
            "training/contract.py", "training/checkpoint.py"} <= sources
    assert not sources & {"training/train.py", "training/data.py", "training/degradations.py", "export/engine.py"}


def test_processes_wanting_one_cache_entry_take_turns(tmp_path):
    """ensure_onnx fetches or exports under the entry's lock: a second process (another test
    worker) waits while the first exports, then finds the export in the cache."""
    script = ("import sys; from pathlib import Path; from export.onnx_cache import exclusive\n"
              "with exclusive(Path(sys.argv[1]), 'a' * 64, 'b' * 64): print('entered')")
    with export.onnx_cache.exclusive(tmp_path, "a" * 64, "b" * 64):
        waiting = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                   text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.communicate(timeout=2)
        with export.onnx_cache.exclusive(tmp_path, "c" * 64, "b" * 64):
            pass  # another entry is not held up
    assert waiting.communicate(timeout=60)[0] == "entered\n"


def test_a_new_task_gets_the_adapter_linked(cpu_only, capsys, tmp_path):
    repo = committed_adapter(tmp_path / "repo")
    checkpoint = tiny_checkpoint(tmp_path / "sr4.pt", "sr4")
    assert engine.main(["--task", "sr4", "--checkpoint", str(checkpoint), "--repository", str(repo)]) == 0
    version = repo / "sr4_net" / "1"
    for name in ("model.py", "ort_runner.py"):
        assert (version / name).readlink() == Path("../../denoise_net/1") / name
        assert (version / name).read_text() == (repo / "denoise_net" / "1" / name).read_text()
    assert "engine: linked" in capsys.readouterr().out
    assert parse((repo / "sr4_net" / "config.pbtxt").read_text()).name == "sr4_net"


def test_missing_checkpoint_and_wrong_task_fail_with_status_1(cpu_only, capsys, tmp_path):
    assert engine.main(["--task", "sr4", "--checkpoint", str(tmp_path / "none.pt"), "--repository", str(tmp_path)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    checkpoint = tiny_checkpoint(tmp_path / "denoise.pt", "denoise")
    assert engine.main(["--task", "sr4", "--checkpoint", str(checkpoint), "--repository", str(tmp_path)]) == 1
    assert "does not fit task 'sr4'" in capsys.readouterr().err


@pytest.mark.parametrize("task", TASKS.values(), ids=lambda t: t.name)
def test_configs_for_both_backends(task):
    inputs = {name: list(spec.dims) for name, spec in task.net_inputs.items()}
    if task.masked:
        assert list(inputs) == [WINDOW, MASK_WINDOW]
    if task.deconvolved:
        assert list(inputs) == [WINDOW, BLUR_KERNEL]
    cpu = parse(render(net_config(task)))
    gpu = parse(render(net_config(task, NetOptions(backend="tensorrt"))))
    for config, kind, batch in ((cpu, mc.ModelInstanceGroup.KIND_CPU, CPU_BATCH),
                                (gpu, mc.ModelInstanceGroup.KIND_GPU, MAX_BATCH_SIZE)):
        assert config.name == task.net_model and config.max_batch_size == batch
        assert {i.name: list(i.dims) for i in config.input} == inputs
        assert [mc.DataType.Name(i.data_type) for i in config.input] == [f"TYPE_{s.dtype}" for s in task.net_inputs.values()]
        assert all(o.data_type == mc.TYPE_UINT8 for o in config.output)
        assert [(o.name, list(o.dims)) for o in config.output] == [(RESTORED, [-1, -1, 3])]
        assert config.HasField("dynamic_batching") and [g.kind for g in config.instance_group] == [kind]
    assert cpu.backend == "python" and cpu.parameters["onnx_file"].string_value == "model.onnx"
    assert cpu.parameters["intra_op_threads"].string_value == "0"
    assert [g.count for g in cpu.instance_group] == [NetOptions.cpu_instances] and [g.count for g in gpu.instance_group] == [1]
    assert cpu.dynamic_batching.preserve_ordering  # instances finish out of order; the ensemble must not see it
    assert cpu.parameters["cpu_memory_arena"].string_value == "true"
    assert gpu.platform == "tensorrt_plan" and gpu.default_model_filename == "model.plan"


# Only tasks with a shipped checkpoint are in the repository: tritonserver (model-control-mode
# none) refuses to start if any model in it cannot load.
SERVED = [t for t in TASKS.values() if (ROOT / "model_repository" / t.net_model).is_dir()]


@pytest.mark.parametrize("task", SERVED, ids=lambda t: t.name)
def test_committed_repository_is_the_cpu_default(task):
    model = ROOT / "model_repository" / task.net_model
    assert (model / "config.pbtxt").read_text() == render(net_config(task)), \
        "regenerate with: python -m export.triton_config"
    for name in ("model.py", "ort_runner.py"):
        assert (model / "1" / name).resolve() == (ROOT / "model_repository/denoise_net/1" / name).resolve()


@pytest.mark.parametrize("task", ["denoise", "sr4"])
def test_window_config_moves_to_the_gpu_with_the_plan_and_back(task):
    committed = (ROOT / "model_repository" / f"{task}_window" / "config.pbtxt").read_text()
    gpu = parse(render(window_config(TASKS[task], WindowOptions(gpu=True))))
    assert [g.kind for g in gpu.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert gpu.parameters["device"].string_value == "cuda"
    assert gpu.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no"
    assert render(window_config(TASKS[task])) == committed


def test_no_window_model_aligns_alignment_is_in_the_graph():
    """Optical flow runs inside an aligned network's graph (training/flow.py); no window model
    config asks for it, and the window models carry no flow code."""
    for task in TASKS:
        committed = parse((ROOT / "model_repository" / f"{task}_window" / "config.pbtxt").read_text())
        assert "align" not in committed.parameters, task
    assert not (ROOT / "training" / "alignment.py").exists()
