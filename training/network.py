"""VideoRestorationNet: the one network definition used by training, export and serving.

Shape of the computation (T frames in, the centre frame out, at scale s):

    each frame --PixelUnshuffle(r)--> conv --> `frame_blocks` residual blocks   (shared weights:
                                                                                 per-frame features)
    concat over T --> 1x1 conv (temporal fusion) --> [U-Net of `levels` levels] --> `fusion_blocks`
    residual blocks --> conv --> PixelShuffle(r*s) --> + upsampled centre frame  (global residual)

A deconvolved network (deblur) also gets its window's blur kernel and Wiener-deconvolves the window
by it first (training/deconvolution.py, inside the graph): each frame carries 6 channels (blurred,
deconvolved), and the global
residual starts from a per-pixel blend of the two centre frames whose weight the network predicts
(a sigmoid gate from the tail), so trusting or ignoring the deconvolution is equally easy.

An inpainting network with `propagation_frames` takes that many frames and masks: its forward
first fills the centre frame's holes with what the other frames show there (flow-guided
propagation, training/propagation.py; no weights), then its body takes the centre `frames`.

The optional U-Net (levels > 0) halves the resolution and doubles the width per level (stride-2
conv, `level_blocks` residual blocks), then comes back up (1x1 conv + PixelShuffle(2), added to the
skip): a receptive field of tens of pixels at little cost, which is what large motion between
frames, long blur kernels and wide holes need.

The network takes frames of any size. Propagation and alignment (flow, the heaviest graphs) work at
the frames' own size; the rest, whose body needs sides that are multiples of `multiple`
(PixelUnshuffle and the U-Net's halvings), works on a replicate-padded copy, cropped at the end.
That also keeps the export cheap: the exporter reasons about every size symbolically, and sizes
carrying the padding arithmetic cost it far more (the inpainting graph exported in 126 s with the
propagation on padded frames, 81 s without).

Working at 1/r resolution after PixelUnshuffle keeps it fast on CPU; the unshuffle and the first
conv run as one stride-r convolution of the full-resolution frames (the same weights rearranged,
`frame_head_strided`), which ONNX Runtime runs 4x faster than the unshuffle's transposes plus the
conv (640x360, 5 frames: 3.1 ms against 12.5). The residual blocks are
EDSR-style (conv, LeakyReLU, conv, skip) with the last conv of each branch scaled down at init,
which is what made this family learn at once in our calibration runs (ENVIRONMENT.md).

The optional refinement stage (refine_channels > 0) works on the output at full resolution
(conv, one residual block, conv; inpainting also sees the centre mask) and adds a correction:
pixel-exact detail that the 1/r-resolution body cannot place, e.g. right at a hole's edge. Its
last conv starts at zero, so a network that gains it (warm start) starts exactly where it was.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.contract import KERNEL_SIZE
from training.deconvolution import WienerDeconvolution, matmul_flops
from training.fill import harmonic_fill, harmonic_fill_macs, keep_smooth_fill
from training.flow import align_window
from training.noise_bound import NoiseBound
from training.propagation import propagate_window
from training.scene_cut import STRIDE, same_scene
from training.upsample import CubicUpsample

# training/blur_kernel.py reports a frame no blurrier than its own edges as a delta kernel (peak 1).
# A deconvolved network returns such a window's centre frame unchanged: without that, the shipped
# deblur took sharp footage with light noise from 42.0 to 41.4-41.7 dB on such windows (robustness
# grid, "sharp + noise sigma 2"). Training sees the same: unblurred samples then teach nothing.
SHARP_PEAK = 0.999
# The upsamples of the centre frame a scale > 1 network adds its residual to (NetConfig.upsample).
UPSAMPLE_MODES = ("bilinear", "bicubic")


@dataclass
class NetConfig:
    """Everything needed to rebuild the network; saved inside every checkpoint."""

    frames: int = 5            # T, the temporal window (odd)
    scale: int = 1             # output scale s: 1, 2 or 4
    channels: int = 32         # width after temporal fusion
    frame_channels: int = 16   # width of the per-frame features
    frame_blocks: int = 1      # residual blocks per frame (weights shared across frames)
    fusion_blocks: int = 3     # residual blocks after fusion
    unshuffle: int = 2         # r: work at 1/r resolution
    masked: bool = False       # inpainting: each frame carries a 4th channel, its mask
    levels: int = 0            # U-Net levels after fusion (0 = none); H, W multiples of r*2**levels
    level_blocks: int = 2      # residual blocks per U-Net level
    aligned: bool = False      # warp the neighbours onto the centre by optical flow first (training/flow.py)
    flow_stride: int = 4       # aligned: the flow is estimated at 1/flow_stride of the input frames' size
    deconvolved: bool = False  # deblur: takes the blur kernel, deconvolves the window by it (training/deconvolution.py)
    refine_channels: int = 0   # width of the full-resolution refinement stage (0 = none)
    propagation_frames: int = 0  # inpaint: the graph takes this many frames (odd, >= frames) and
                                 # propagates into the centre from all of them first (training/propagation.py);
                                 # 0 = it takes `frames`
    noise_bound: float = 0.0   # denoise: soft-clip each pixel's change to about this many times the
                               # input's noise level (training/noise_bound.py); 0 = unbounded
    upsample: str = "bilinear"  # scale > 1: the centre frame's upsample the residual is added to
                                # ("bilinear" or "bicubic": training/upsample.py)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"NetConfig.frames must be odd and >= 1, got {self.frames}")
        if self.scale not in (1, 2, 4):
            raise ValueError(f"NetConfig.scale must be 1, 2 or 4, got {self.scale}")
        if self.unshuffle not in (1, 2, 4):
            raise ValueError(f"NetConfig.unshuffle must be 1, 2 or 4, got {self.unshuffle}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"NetConfig.upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if not 0 <= self.levels <= 4:
            raise ValueError(f"NetConfig.levels must be in 0..4, got {self.levels}")
        if self.masked and self.deconvolved:
            raise ValueError("NetConfig: masked (inpaint) and deconvolved (deblur) exclude each other")
        if self.propagation_frames and (not self.masked or self.propagation_frames % 2 == 0
                                        or self.propagation_frames < self.frames):
            raise ValueError(f"NetConfig.propagation_frames ({self.propagation_frames}) is for masked networks, "
                             f"odd and >= frames ({self.frames})")
        if self.noise_bound < 0 or (self.noise_bound and (self.masked or self.deconvolved or self.scale != 1)):
            raise ValueError(f"NetConfig.noise_bound ({self.noise_bound}) must be >= 0, and is for plain denoisers "
                             "(scale 1, neither masked nor deconvolved)")
        if self.flow_stride not in (1, 2, 4):
            raise ValueError(f"NetConfig.flow_stride must be 1, 2 or 4, got {self.flow_stride}")
        if self.masked and self.aligned:
            raise ValueError("NetConfig: aligned windows are for unmasked networks (flow on masked frames is not defined)")

    @property
    def input_frames(self) -> int:
        """Frames per window the network's forward (and its exported graph) takes."""
        return self.propagation_frames or self.frames

    @property
    def in_channels(self) -> int:
        """Channels per frame at full resolution: RGB, plus its mask or its deconvolved RGB."""
        return 3 + (1 if self.masked else 0) + (3 if self.deconvolved else 0)

    @property
    def multiple(self) -> int:
        """H and W must be multiples of this; the serving graph pads to it."""
        return self.unshuffle * 2**self.levels

    def to_dict(self) -> dict:
        return asdict(self)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the last two dims of (N, T, C, H, W) up to a multiple of `multiple`."""
    if multiple == 1:
        return x
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    n, t, c = x.shape[:3]
    flat = F.pad(x.reshape(n, t * c, h, w), (0, pad_w, 0, pad_h), mode="replicate")
    return flat.reshape(n, t, c, h + pad_h, w + pad_w)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class WindowAlignment(nn.Module):
    """`align_window` (training/flow.py) as a module without weights: its exported nodes carry the
    module path `net.alignment`, which an FP16 TensorRT plan keeps in FP32 (export/fp32_layers.py)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, T, 3, H, W) RGB in [0, 1] -> the same, neighbours warped onto the centre."""
        return align_window(frames, self.stride)


class WindowPropagation(nn.Module):
    """`propagate_window` (training/propagation.py) as a module without weights, kept in FP32 in an
    FP16 plan for the same reason as WindowAlignment; keeps the centre `keep` frames."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def forward(self, frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, T, 3, H, W) in [0, 1], masks (N, T, 1, H, W) in {0, 1} -> the centre `keep`
        of each, the centre frame filled from all T frames and its mask shrunk accordingly."""
        return propagate_window(frames, masks, self.keep)


class VideoRestorationNet(nn.Module):
    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c, r, s = config, config.unshuffle, config.scale
        in_per_frame = c.in_channels * r * r
        self.frame_head = nn.Conv2d(in_per_frame, c.frame_channels, 3, padding=1)
        self.frame_body = nn.Sequential(*[ResidualBlock(c.frame_channels) for _ in range(c.frame_blocks)])
        self.fuse = nn.Conv2d(c.frames * c.frame_channels, c.channels, 1)
        widths = [c.channels * 2**level for level in range(c.levels + 1)]
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.encoders = nn.ModuleList(
            nn.Sequential(*[ResidualBlock(b) for _ in range(c.level_blocks)]) for b in widths[1:]
        )
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(b, 4 * a, 1), nn.PixelShuffle(2)) for a, b in zip(widths, widths[1:])
        )
        # After each merge above the bottom, one block mixes the coarse context into the skip.
        self.decoders = nn.ModuleList(ResidualBlock(a) for a in widths[1:-1])
        self.fusion_body = nn.Sequential(*[ResidualBlock(c.channels) for _ in range(c.fusion_blocks)])
        # The tail also predicts the deconvolution gate's logit per output pixel (deconvolved only).
        self.tail = nn.Conv2d(c.channels, (4 if c.deconvolved else 3) * (r * s) ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r * s)
        if s > 1 and c.upsample == "bicubic":
            self.upsample = CubicUpsample(s)
        if c.deconvolved:
            self.deconvolution = WienerDeconvolution()
        if c.aligned:
            self.alignment = WindowAlignment(c.flow_stride)
        if c.propagation_frames:
            self.propagation = WindowPropagation(c.frames)
        if c.noise_bound:
            self.noise_bound = NoiseBound(c.noise_bound)
        if c.refine_channels:
            self.refine_head = nn.Conv2d(3 + (1 if c.masked else 0), c.refine_channels, 3, padding=1)
            self.refine_body = ResidualBlock(c.refine_channels)
            self.refine_tail = nn.Conv2d(c.refine_channels, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        # Branch ends start small so every block, and the whole net, starts near identity.
        blocks = [*self.frame_body, *self.fusion_body, *self.decoders, *(b for e in self.encoders for b in e)]
        for block in blocks:
            block.conv2.weight.data.mul_(0.1)
        for up in self.ups:
            up[0].weight.data.mul_(0.1)
        self.tail.weight.data.mul_(0.1)
        if self.config.refine_channels:
            self.refine_body.conv2.weight.data.mul_(0.1)
            nn.init.zeros_(self.refine_tail.weight)

    def frame_head_strided(self, x: torch.Tensor) -> torch.Tensor:
        """`frame_head(pixel_unshuffle(x, r))` as one stride-r convolution of x (N, C, H, W), H and W
        multiples of r: the 3x3 kernel over r x r blocks is a 3r x 3r kernel over pixels, tap
        (dy * r + i, dx * r + j) being the weight of block offset (dy, dx) on sub-pixel (i, j)."""
        r = self.config.unshuffle
        if r == 1:
            return self.frame_head(x)
        w = self.frame_head.weight
        out_channels, k = w.shape[0], w.shape[-1]
        w = w.view(out_channels, -1, r, r, k, k).permute(0, 1, 4, 2, 5, 3).reshape(out_channels, -1, k * r, k * r)
        return F.conv2d(x, w, self.frame_head.bias, stride=r, padding=r * (k // 2))

    def forward(
        self, frames: torch.Tensor, masks: torch.Tensor | None = None, kernel: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Restore the centre frame of a window.

        frames: float (N, T, 3, H, W), RGB in [0, 1], any H and W; T = config.input_frames.
        masks:  float (N, T, 1, H, W) in {0, 1}, 1 = pixel to fill; required iff config.masked.
        kernel: float (N, k, k), each window's blur kernel (sum 1, convolution convention; k odd,
                 <= 49), estimated on its centre frame (training/blur_kernel.py); required iff
                 config.deconvolved. The window is Wiener-deconvolved by it in the graph.
        Returns float (N, 3, H*s, W*s), RGB, about [0, 1] (not clamped: the loss sees overshoot).
        Every network but a masked one first replaces frames of another scene than the centre's
        (training/scene_cut.py); an aligned one then warps each neighbour onto the centre frame
        (training/flow.py), and a propagating one fills its centre frame from all its frames and keeps
        the centre `frames` (training/propagation.py), inside the graph, so training, evaluation and
        serving do the same.
        A deconvolved network returns the centre frame unchanged where its kernel is a delta (no blur
        found: `SHARP_PEAK`); a noise-bounded one changes each pixel of it by about `noise_bound`
        times the noise seen in it at most (training/noise_bound.py).
        """
        t = frames.shape[1]
        c = self.config
        if t != c.input_frames:
            raise ValueError(f"expected a window of {c.input_frames} frames, got {t} (shape {tuple(frames.shape)})")
        if t > 1 and not c.masked:
            # Frames of another scene out (training/scene_cut.py): a network fuses its neighbours as
            # views of the centre, and across a cut they are not. Measured on bikes' first frame after
            # a cut: denoise +2.3 dB, deblock +0.3 (benchmarks/RESULTS.md, 2026-12-07 17:01-17:20); on
            # the grid's cut windows sr4 +0.2 to +3.8, deblur up to +1.5 (18:10-18:40). Not for masked
            # (inpainting) networks: each frame's mask would have to move with it, and inpaint's
            # propagation checks every pixel it copies from another frame anyway.
            frames = same_scene(frames, stride=max(1, STRIDE // c.scale))
        if c.propagation_frames:
            if masks is None:
                raise ValueError("this network is masked (inpainting): pass masks (N, T, 1, H, W)")
            frame, hidden = frames[:, t // 2], masks[:, t // 2]
            frames, masks = self.propagation(frames, masks)
        if c.aligned:
            frames = self.alignment(frames)
        h, w = frames.shape[-2:]
        restored = self.restore_padded(pad_to_multiple(frames, c.multiple),
                                       None if masks is None else pad_to_multiple(masks, c.multiple), kernel)
        restored = restored[:, :, : h * c.scale, : w * c.scale]
        if c.propagation_frames:
            # Propagated pixels too: on thin strokes over flat surroundings (a timestamp over sky or a
            # dashboard) pixels copied from other frames by a flow that cannot see under the stroke
            # err more than the stroke's smooth fill (carphone's timestamp: 3.1 dB under OpenCV's
            # Navier-Stokes; benchmarks/RESULTS.md, 2026-12-07 12:45-12:55).
            restored = keep_smooth_fill(restored, harmonic_fill(frame * (1 - hidden), 1 - hidden), hidden)
        return restored

    def restore_padded(self, frames: torch.Tensor, masks: torch.Tensor | None, kernel: torch.Tensor | None) -> torch.Tensor:
        """`forward` after propagation and alignment, on frames (and masks) whose H and W are
        multiples of `config.multiple`: (N, T, 3, H, W) -> (N, 3, H*s, W*s)."""
        c = self.config
        n, t, _, h, w = frames.shape
        centre = frames[:, t // 2]
        x = frames - 0.5
        if c.masked:
            if masks is None:
                raise ValueError("this network is masked (inpainting): pass masks (N, T, 1, H, W)")
            x = torch.cat([x * (1 - masks), masks], dim=2)
            # The global residual must not carry the hidden pixels through either: it starts from a
            # smooth fill of the hole from its surroundings (the network learns the detail on top),
            # so the output never depends on what is under the mask.
            m = masks[:, t // 2]
            centre = harmonic_fill(centre * (1 - m), 1 - m)
        if c.deconvolved:
            if kernel is None:
                raise ValueError("this network is deconvolved (deblur): pass the blur kernel (N, k, k)")
            deconvolved = self.deconvolution(frames.reshape(n, t * 3, h, w), kernel).reshape(n, t, 3, h, w)
            x = torch.cat([x, deconvolved - 0.5], dim=2)
        x = self.frame_head_strided(x.reshape(n * t, c.in_channels, h, w))
        feats = self.frame_body(self.act(x))
        feats = feats.reshape(n, t * c.frame_channels, h // c.unshuffle, w // c.unshuffle)
        fused = self.fusion_body(self.u_net(self.act(self.fuse(feats))))
        residual = self.shuffle(self.tail(fused))
        if c.deconvolved:
            residual, gate = residual[:, :3], torch.sigmoid(residual[:, 3:])
            centre = centre + gate * (deconvolved[:, t // 2] - centre)
        if c.scale > 1:
            centre = (self.upsample(centre) if c.upsample == "bicubic" else
                      F.interpolate(centre, scale_factor=c.scale, mode="bilinear", align_corners=False))
        out = centre + residual
        if c.refine_channels:
            guide = torch.cat([out - 0.5, m], dim=1) if c.masked else out - 0.5
            out = out + self.refine_tail(self.refine_body(self.act(self.refine_head(guide))))
        if c.masked:
            # Thin holes over flat surroundings keep the smooth fill (training/fill.py); known
            # pixels pass through unchanged, so the loss only sees (and trains) the hidden ones.
            return keep_smooth_fill(out, centre, m)
        if c.deconvolved:
            # Do no harm: a window whose kernel is a delta (the estimate's "no blur") comes back as it
            # came in, rather than sharpened anyway.
            sharp = kernel.flatten(1).amax(dim=1) > SHARP_PEAK
            return torch.where(sharp.view(n, 1, 1, 1), frames[:, t // 2], out)
        if c.noise_bound:
            # Do no harm: change each pixel by little more than the noise the input shows.
            return self.noise_bound(centre, out)
        return out


    def u_net(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, C, h, w), h and w multiples of 2**levels; identity when levels = 0."""
        skips = []
        for down, encoder in zip(self.downs, self.encoders):
            skips.append(x)
            x = encoder(self.act(down(x)))
        for level in reversed(range(len(skips))):
            x = skips[level] + self.ups[level](x)
            if level > 0:
                x = self.decoders[level - 1](x)
        return x


def second_input_name(config: NetConfig) -> str:
    """The keyword of VideoRestorationNet.forward that takes its second input (masks or kernel)."""
    if config.masked:
        return "masks"
    if config.deconvolved:
        return "kernel"
    raise ValueError("this network takes the window alone (neither masked nor deconvolved)")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops_per_frame(config: NetConfig, height: int, width: int) -> float:
    """Multiply-accumulate count x2 of the convolutions (and of a deconvolved network's matrix
    DFTs, and a masked network's harmonic fill) for one output frame of H x W input."""
    r, s = config.unshuffle, config.scale
    hw = math.ceil(height / r) * math.ceil(width / r)
    in_per_frame = config.in_channels * r * r
    fc, cc = config.frame_channels, config.channels
    macs = config.frames * hw * 9 * (in_per_frame * fc + config.frame_blocks * 2 * fc * fc)
    macs += hw * (config.frames * fc * cc + config.fusion_blocks * 2 * 9 * cc * cc)
    for level in range(1, config.levels + 1):
        w_in, w_out, hw_level = cc * 2 ** (level - 1), cc * 2**level, hw / 4**level
        macs += hw_level * (9 * w_in * w_out + config.level_blocks * 2 * 9 * w_out * w_out + w_out * 4 * w_in)
        if level < config.levels:
            macs += hw_level * 2 * 9 * w_out * w_out  # the decoder block at this level
    macs += hw * 9 * cc * (4 if config.deconvolved else 3) * (r * s) ** 2
    rc = config.refine_channels
    if rc:
        macs += height * width * s * s * 9 * ((3 + (1 if config.masked else 0)) * rc + 2 * rc * rc + rc * 3)
    if config.masked:  # a propagating network fills its centre's hole twice (before and after propagation)
        macs += harmonic_fill_macs(height, width) * (2 if config.propagation_frames else 1)
    if config.noise_bound:
        macs += height * width * 3 * 9  # the noise estimate's 3x3 convolution
    flops = 2 * macs
    if config.deconvolved:
        flops += matmul_flops(3 * config.frames, height, width, KERNEL_SIZE)
    return flops / 1e9
