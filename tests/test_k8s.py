"""Kubernetes manifests (packaging/k8s): render them with `kubectl kustomize` and check that the
pieces fit together: probes and Service ports name real container ports, selectors match the pod
labels, the HPA scales the Deployment on metrics the prometheus-adapter rules publish, the GPU is
requested, and the admin key comes from a Secret through the environment.

Nothing here talks to a cluster: no cluster is reachable from this machine."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML parses the rendered manifests (requirements.txt)")

K8S = Path(__file__).resolve().parents[1] / "packaging" / "k8s"
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


@pytest.fixture(scope="module")
def objects() -> dict[str, dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), f"one object of each kind expected, got {[d['kind'] for d in docs]}"
    return by_kind


def container(objects: dict[str, dict]) -> dict:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def port_number(c: dict, port: int | str) -> int:
    """A probe's or Service's target port (name or number) resolved against the container's ports."""
    by_name = {p["name"]: p["containerPort"] for p in c["ports"]}
    if isinstance(port, str):
        assert port in by_name, f"port {port!r} is not a container port ({sorted(by_name)})"
        return by_name[port]
    assert port in by_name.values(), f"port {port} is not a container port ({by_name})"
    return port


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_renders_the_expected_objects(objects):
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodMonitor"}


def test_container_ports_are_tritons(objects):
    assert {p["name"]: p["containerPort"] for p in container(objects)["ports"]} == TRITON_PORTS


def test_probes_hit_triton_health_endpoints_on_http(objects):
    c = container(objects)
    expected = {"readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live",
                "startupProbe": "/v2/health/live"}
    for probe, path in expected.items():
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert port_number(c, get["port"]) == TRITON_PORTS["http"], probe
    # The startup probe must outlast a cold start that builds TensorRT plans (minutes).
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_deployment_selector_matches_its_pods(objects):
    dep = objects["Deployment"]["spec"]
    assert matches(dep["selector"]["matchLabels"], dep["template"]["metadata"]["labels"])
    assert "replicas" not in dep, "the HPA owns the replica count"


def test_service_routes_grpc_and_metrics_to_the_pods(objects):
    svc, pod_labels = objects["Service"]["spec"], objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert matches(svc["selector"], pod_labels)
    c = container(objects)
    targets = {p["name"]: (p["port"], port_number(c, p["targetPort"])) for p in svc["ports"]}
    assert targets["grpc"] == (8001, TRITON_PORTS["grpc"])
    assert targets["metrics"][1] == TRITON_PORTS["metrics"]
    assert "http" not in targets, "HTTP carries the restricted admin API too: keep it off the Service"


def test_gpu_is_requested(objects):
    resources = container(objects)["resources"]
    assert int(resources["limits"]["nvidia.com/gpu"]) >= 1
    # Kubernetes requires GPU requests, when given, to equal the limit.
    assert resources["requests"].get("nvidia.com/gpu", resources["limits"]["nvidia.com/gpu"]) == resources["limits"]["nvidia.com/gpu"]


def test_python_backend_gets_shared_memory(objects):
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (name,) = [n for n, path in mounts.items() if path == "/dev/shm"]
    assert volumes[name]["emptyDir"]["medium"] == "Memory"


def test_admin_key_comes_from_the_secret_through_the_environment(objects):
    c = container(objects)
    env = {e["name"]: e for e in c.get("env", [])}
    ref = env["RESTORE_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("restore-admin-key", "admin-key")
    assert "value" not in env["RESTORE_ADMIN_KEY"]
    argv = " ".join(c.get("command", []) + c.get("args", []))
    assert "admin" not in argv, f"the key must never be on the command line: {argv}"
    assert "Secret" not in objects, "the key is created in the cluster by hand, never committed"


def test_hpa_scales_the_deployment_on_published_metrics(objects):
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", objects["Deployment"]["metadata"]["name"])
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    rules = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
    published = {r["name"]["as"] for r in rules}
    wanted = {m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"}
    assert wanted and wanted <= published, f"HPA wants {wanted}, the adapter publishes {published}"
    # Each rule reads a series the server exports: Triton's queue gauge and the window models' gauge.
    series = {r["seriesQuery"].split("{")[0] for r in rules}
    assert "nv_inference_pending_request_count" in series
    window_model = (K8S.parents[1] / "model_repository" / "denoise_window" / "1" / "model.py").read_text()
    assert all(s.startswith("nv_") or f'"{s}"' in window_model for s in series), series


def test_podmonitor_scrapes_the_metrics_port(objects):
    pm, pod_labels = objects["PodMonitor"]["spec"], objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert matches(pm["selector"]["matchLabels"], pod_labels)
    (endpoint,) = pm["podMetricsEndpoints"]
    assert port_number(container(objects), endpoint["port"]) == TRITON_PORTS["metrics"]


def test_deployment_runs_the_gpu_image_as_built(objects):
    """Image name, ports, working folder and admin key agree with packaging/gpu (the image)."""
    gpu = K8S.parent / "gpu"
    dockerfile = (gpu / "Dockerfile").read_text()
    c = container(objects)
    built_as = re.search(r"docker build -f packaging/gpu/Dockerfile -t (\S+) \.", dockerfile).group(1)
    assert c["image"] == built_as
    exposed = {int(p) for line in dockerfile.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert exposed == set(TRITON_PORTS.values())
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, re.MULTILINE).group(1)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert all(m == "/dev/shm" or m.startswith(workdir + "/") for m in mounts), mounts
    assert f"{workdir}/model_repository" not in mounts, "a volume there would hide the image's model repository"
    # The entry point starts the server through client/local_server.py, which reads the key.
    assert "client.local_server" in (gpu / "entrypoint.sh").read_text()
    assert "RESTORE_ADMIN_KEY" in (K8S.parents[1] / "client" / "local_server.py").read_text()
