"""The numbers training, export and serving must agree on: tensor names, dtypes, window length,
scale, channel order and value range. No heavy imports: the export step writes the model
repository's config.pbtxt files from this module, and a test checks the committed ones agree.

The client does not import this: it learns the same facts from the server's model metadata and
config, as a thin Triton client should.
"""
from __future__ import annotations

from dataclasses import dataclass

# Tensor names on the wire and in the ONNX graph.
FRAME = "FRAME"              # UINT8 [H, W, 3]      one RGB frame as decoded
WINDOW = "WINDOW"            # UINT8 [T, H, W, 3]   the net's T = Task.net_frames frames, centre restored
MASK = "MASK"                # UINT8 [H, W, 1] in; fill from grey level MASK_FILL_FROM on (255 = fill)
MASK_WINDOW = "MASK_WINDOW"  # UINT8 [T, H, ceil(W/8), 1] the masks of a window (inpaint only), one bit
                             # per pixel along W, most significant first (NumPy's packbits), 1 = fill:
                             # 8x fewer bytes to copy per window than grey masks (training/processing.py)
BLUR_KERNEL = "BLUR_KERNEL"  # FP32 [K, K]        the window's blur kernel, estimated on its centre frame
                             # by the window model (deblur only; training/blur_kernel.py); sum 1
FRAME_INDEX = "FRAME_INDEX"  # INT64 [1]            index of the centre frame in its stream
RESTORED = "RESTORED"        # UINT8 [H*s, W*s, 3]  restored centre frame

MASK_FILL_FROM = 128         # a MASK pixel at this grey level or above is one to fill
CHANNEL_ORDER = "RGB"
WIRE_DTYPE = "UINT8"         # uint8 at the network's edges; the graph converts to float itself
VALUE_MAX = 255.0            # network-side values are wire values / VALUE_MAX, in [0, 1]
ONNX_OPSET = 17
MAX_BATCH_SIZE = 8           # a TensorRT plan's default profile: dynamic batching across streams in <task>_net
# max_batch_size of the ensembles, window models and ONNX Runtime nets: one window per call, in each
# of the net's instances (export/triton_config.py NetOptions.cpu_instances), served more frames/s
# than one instance batching up to 8 (benchmarks/RESULTS.md, 2026-12-07), and a 21-frame 1080p
# inpaint window alone takes ~4 GB in ONNX Runtime.
CPU_BATCH = 1
# Inpainting looks this far (odd, centred) for pixels its mask hides in the centre frame but another
# frame shows: 24.69 dB in the mask on held-out bikes at 21 frames vs 23.58 without, with the same
# network (24.49 at 13, 24.60 at 17; chosen on bigbuckbunny with the OpenCV propagation that
# preceded training/propagation.py; benchmarks/results_inpaint.md).
PROPAGATION_FRAMES = 21
MAX_SIDE = 2160              # largest H or W <task>_net takes (the TensorRT profile's maximum);
                             # the client tiles larger frames, learning this from the net's config


KERNEL_SIZE = 21             # K: the largest blur kernel deblur estimates (odd; training blurs reach 21 px)


@dataclass(frozen=True)
class NetInput:
    """One input of a `<task>_net` (and output of its window model): its element type and its
    dims without the batch, as in config.pbtxt; -1 is the frame's height, then its width."""

    dtype: str                  # "UINT8" or "FP32" (Triton's names without the TYPE_ prefix)
    dims: tuple[int, ...]
    bit_packed: bool = False    # 8 pixels per byte along W (MASK_WINDOW): the last -1 is ceil(W/8)

    def shape(self, batch: int | str, height: int | str, width: int | str) -> tuple[int | str, ...]:
        """The full shape, batch first, at a frame size (names give symbolic axes' names)."""
        if self.bit_packed:
            width = f"{width}_bytes" if isinstance(width, str) else -(-width // 8)
        sides = iter((height, width))
        return (batch, *(next(sides) if d == -1 else d for d in self.dims))


def net_inputs(frames: int, masked: bool = False, deconvolved: bool = False) -> dict[str, NetInput]:
    """A `<task>_net`'s inputs in the ONNX graph's argument order: the window of `frames` frames
    UINT8 [T, H, W, 3], then inpaint's bit-packed masks UINT8 [T, H, ceil(W/8), 1] or deblur's
    kernel FP32 [K, K]."""
    window = {WINDOW: NetInput("UINT8", (frames, -1, -1, 3))}
    if masked:
        window[MASK_WINDOW] = NetInput("UINT8", (frames, -1, -1, 1), bit_packed=True)
    if deconvolved:
        window[BLUR_KERNEL] = NetInput("FP32", (KERNEL_SIZE, KERNEL_SIZE))
    return window


@dataclass(frozen=True)
class Task:
    """One served task: an ensemble `<name>` = `<name>_window` -> `<name>_net`.

    Two lengths, one name each: `window` is how many frames the window model holds per stream
    and windows over (a response lags the frame it restores by window // 2 frames; its `window`
    parameter), `net_frames` how many consecutive frames the network takes (its WINDOW input's
    first dim, NetConfig.input_frames). Today they are equal for every task (inpaint: 21 both)."""

    name: str
    scale: int
    net_frames: int = 5
    window: int = 5
    masked: bool = False        # the client streams a MASK beside each FRAME
    deconvolved: bool = False   # the window model adds the BLUR_KERNEL of each window for the net
    propagate: bool = False     # inpaint: the net's graph fills the centre's hidden pixels from all
                                # `net_frames` frames by optical flow (training/propagation.py;
                                # NetConfig.propagation_frames = net_frames) before its body sees
                                # the centre NetConfig.frames; the window model only windows

    def __post_init__(self) -> None:
        if self.net_frames % 2 == 0 or self.window % 2 == 0 or self.window < self.net_frames:
            raise ValueError(f"task {self.name}: net_frames ({self.net_frames}) and window ({self.window}) "
                             "must be odd, with window >= net_frames")

    @property
    def net_inputs(self) -> dict[str, NetInput]:
        return net_inputs(self.net_frames, self.masked, self.deconvolved)

    @property
    def window_model(self) -> str:
        return f"{self.name}_window"

    @property
    def net_model(self) -> str:
        return f"{self.name}_net"


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("denoise", scale=1),
        Task("deblock", scale=1),
        Task("deblur", scale=1, deconvolved=True),
        Task("sr4", scale=4),
        Task("inpaint", scale=1, masked=True, net_frames=PROPAGATION_FRAMES, window=PROPAGATION_FRAMES,
             propagate=True),
    )
}


def get_task(name: str) -> Task:
    """The task called `name`; a ValueError naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
