"""Shapes through every network variant, at tiny widths (fast, no checkpoint): each task's shipped
architecture and each axis a NetConfig can vary, in float (training) and with the uint8 edges that
export and serving use, on sizes that are and are not multiples of what the network needs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from training.config import parse_args
from training.contract import KERNEL_SIZE, TASKS
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet, pack_masks

TINY = {"channels": 8, "frame_channels": 4, "fusion_blocks": 1, "level_blocks": 1}


def tiny(config: NetConfig) -> NetConfig:
    """`config` with its widths and depths cut down; its structure (frames, scale, unshuffle,
    levels, masks, propagation, deconvolution, refinement) kept."""
    return dataclasses.replace(config, **TINY, refine_channels=min(config.refine_channels, 4))


def shipped_variant(task: str) -> NetConfig:
    """The architecture `make train TASK=task` builds (the shipped one), made tiny."""
    return tiny(parse_args(["--task", task]).net_config())


VARIANTS = {
    **{task: shipped_variant(task) for task in TASKS},
    "one frame": tiny(NetConfig(frames=1)),
    "three frames": tiny(NetConfig(frames=3)),
    "full resolution": tiny(NetConfig(unshuffle=1)),
    "unshuffle 4, two levels": tiny(NetConfig(unshuffle=4, levels=2)),
    "scale 2": tiny(NetConfig(scale=2, unshuffle=1, levels=1)),
    "scale 4, refined": tiny(NetConfig(scale=4, unshuffle=1, refine_channels=4)),
    "scale 4, aligned at every pixel": tiny(NetConfig(scale=4, unshuffle=1, aligned=True, flow_stride=1)),
    "masked, no refinement": tiny(NetConfig(masked=True, levels=1)),
    "masked, propagating from 7 frames": tiny(NetConfig(masked=True, propagation_frames=7)),
    "deconvolved, no frame blocks": tiny(NetConfig(deconvolved=True, frame_blocks=0)),
}


def float_inputs(config: NetConfig, n: int, h: int, w: int) -> tuple[torch.Tensor, dict]:
    frames = torch.rand(n, config.input_frames, 3, h, w)
    extra = {}
    if config.masked:
        extra["masks"] = (torch.rand(n, config.input_frames, 1, h, w) > 0.7).float()
    if config.deconvolved:
        extra["kernel"] = torch.softmax(torch.rand(n, KERNEL_SIZE * KERNEL_SIZE), 1).reshape(n, KERNEL_SIZE, KERNEL_SIZE)
    return frames, extra


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("multiples", [True, False], ids=["multiples", "any size"])
def test_float_network_restores_the_centre_frame_at_its_scale(name, multiples):
    config = VARIANTS[name]
    net = VideoRestorationNet(config).eval()
    h, w = (2 * config.multiple, 3 * config.multiple) if multiples else (2 * config.multiple + 3, 3 * config.multiple - 1)
    frames, extra = float_inputs(config, 2, h, w)
    with torch.no_grad():
        out = net(frames, **extra)
    assert out.shape == (2, 3, h * config.scale, w * config.scale) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match=f"expected a window of {config.input_frames} frames"):
        net(torch.rand(1, config.input_frames + 2, 3, h, w))


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [(17, 29), (32, 48)], ids=["odd", "even"])
def test_uint8_edges_take_any_size_and_give_uint8_at_scale(name, size):
    config = VARIANTS[name]
    serving = ServingNet(VideoRestorationNet(config).eval())
    h, w = size
    window = torch.randint(0, 256, (2, config.input_frames, h, w, 3), dtype=torch.uint8)
    second = None
    if config.masked:
        masks = np.random.default_rng(0).integers(0, 2, (2, config.input_frames, h, w, 1), dtype=np.uint8) * 255
        second = torch.from_numpy(pack_masks(masks))
    elif config.deconvolved:
        second = torch.softmax(torch.rand(2, KERNEL_SIZE * KERNEL_SIZE), 1).reshape(2, KERNEL_SIZE, KERNEL_SIZE)
    with torch.no_grad():
        out = serving(window, second)
    assert out.shape == (2, h * config.scale, w * config.scale, 3) and out.dtype == torch.uint8
    if config.masked:  # outside the mask the centre frame comes back bit-exact
        keep = torch.from_numpy(masks[:, config.input_frames // 2, ..., 0] == 0)
        assert torch.equal(out[keep], window[:, config.input_frames // 2][keep])


@pytest.mark.parametrize("name", [n for n in VARIANTS if VARIANTS[n].aligned or VARIANTS[n].propagation_frames])
def test_flow_steps_see_the_frames_own_size_and_the_body_a_padded_copy(name):
    """Propagation and alignment run before the padding (their export is much cheaper on plain
    sizes); the body, which needs multiples, gets them."""
    config = VARIANTS[name]
    net = VideoRestorationNet(config).eval()
    h, w = 2 * config.multiple + 3, 3 * config.multiple - 1
    seen = {}
    steps = {"propagation": net.propagation if config.propagation_frames else None,
             "alignment": net.alignment if config.aligned else None, "body": net.fuse}
    def record(step: str):
        def hook(_module, args, _output) -> None:
            seen.setdefault(step, tuple(args[0].shape[-2:]))
        return hook

    for step, module in steps.items():
        if module is not None:
            module.register_forward_hook(record(step))
    frames, extra = float_inputs(config, 1, h, w)
    with torch.no_grad():
        net(frames, **extra)
    padded = tuple(-(-side // config.multiple) * config.multiple // config.unshuffle for side in (h, w))
    assert seen == {**{step: (h, w) for step, m in steps.items() if m is not None and step != "body"}, "body": padded}


@pytest.mark.parametrize("name", [n for n in VARIANTS if VARIANTS[n].masked or VARIANTS[n].deconvolved])
def test_a_missing_second_input_is_an_error(name):
    config = VARIANTS[name]
    serving = ServingNet(VideoRestorationNet(config).eval())
    with pytest.raises(ValueError, match="mask window|blur kernel"):
        serving(torch.zeros(1, config.input_frames, 16, 16, 3, dtype=torch.uint8))


def test_the_shipped_variants_take_the_frames_the_contract_says():
    for task in TASKS.values():
        config = VARIANTS[task.name]
        assert (config.input_frames, config.scale, config.masked, config.deconvolved) == \
            (task.net_frames, task.scale, task.masked, task.deconvolved)


@pytest.mark.parametrize("name", [n for n in VARIANTS if VARIANTS[n].unshuffle > 1])
def test_the_strided_frame_head_is_the_unshuffle_then_the_head(name):
    """The first conv runs as one stride-r convolution of the full-resolution frames (fast in ONNX
    Runtime); its weights stay the 3x3 ones over r x r blocks, so it must equal them exactly."""
    net = VideoRestorationNet(VARIANTS[name]).eval()
    r, channels = net.config.unshuffle, net.config.in_channels
    x = torch.rand(2, channels, 8 * r, 12 * r)
    with torch.no_grad():
        expected = net.frame_head(torch.nn.functional.pixel_unshuffle(x, r))
        torch.testing.assert_close(net.frame_head_strided(x), expected, rtol=0, atol=1e-5)
