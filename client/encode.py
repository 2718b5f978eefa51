"""Encoding restored frames. The output is written as segments (independently encoded runs of
frames, each complete on disk before the next starts, so an interrupted restore resumes at a
segment boundary), then assembled by packet copy into the final file together with the source's
audio and subtitle packets, untouched, its chapters and (Matroska) attachments such as fonts.

Formats: .mp4 (H.264 libx264 or H.265 libx265, --crf, --preset), .mkv (FFV1 on RGB, lossless, or
either of those), or an image-sequence pattern such as out/%05d.png (numbered from 1, as FFmpeg
does). The pixel format follows the source: 4:2:0 (4:4:4 when a side is odd, since 4:2:0 needs
even sides) in 8 bits, or in 10 bits when the source has more than 8."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np

from .colour import Colour, rgb_to_frame, tags
from .decode import is_pattern, open_input
from .errors import RestoreError

_CONTAINERS = {"mp4": "mp4", "mkv": "matroska"}
CODECS = {"mp4": ("libx264", "libx265"), "mkv": ("ffv1", "libx264", "libx265")}
_DEFAULT_CODEC = {"mp4": "libx264", "mkv": "ffv1"}


def output_kind(path: str) -> str:
    """'mp4', 'mkv' or 'png' for an output path; an error for anything else."""
    ext = os.path.splitext(path)[1].lower()
    if is_pattern(path):
        if ext != ".png":
            raise RestoreError(f"image-sequence output must be a .png pattern such as out/%05d.png, not '{path}'")
        return "png"
    if ext in (".mp4", ".mkv"):
        return ext[1:]
    raise RestoreError(f"output '{path}' must end in .mp4, .mkv or be a pattern such as out/%05d.png")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode: output kind, codec (None: the kind's default), quality and speed (x264/x265),
    pixel format (None: chosen from the source's bit depth and the frame size)."""

    kind: str
    codec: str | None = None
    crf: int = 16
    preset: str = "veryfast"
    pix_fmt: str | None = None

    @property
    def video_codec(self) -> str:
        return self.codec or _DEFAULT_CODEC.get(self.kind, "png")

    def check(self) -> None:
        """Refuse a codec the container cannot hold or a pixel format the codec cannot take."""
        if self.kind == "png":
            if self.codec or self.pix_fmt:
                raise RestoreError("--codec and --pix-fmt do not apply to a PNG image sequence")
            return
        if self.video_codec not in CODECS[self.kind]:
            raise RestoreError(f"--codec {self.video_codec} cannot be written to .{self.kind} "
                               f"(.{self.kind} takes {', '.join(CODECS[self.kind])})")
        formats = [f.name for f in av.codec.Codec(self.video_codec, "w").video_formats]
        if self.pix_fmt and self.pix_fmt not in formats:
            raise RestoreError(f"--pix-fmt {self.pix_fmt}: {self.video_codec} takes {', '.join(formats)}")


@dataclass(frozen=True)
class VideoFormat:
    """The restored stream: size after scaling, the source's timing, colour and bit depth."""

    width: int
    height: int
    time_base: Fraction
    rate: Fraction
    colour: Colour
    bits: int = 8

    def pix_fmt(self, settings: EncodeSettings) -> str:
        if settings.pix_fmt:
            return settings.pix_fmt
        deep = self.bits > 8  # the network restores in 8 bits; a 10-bit source still gets a 10-bit file
        if settings.video_codec == "ffv1":
            return "gbrp10le" if deep else "bgr0"  # FFV1 on RGB is exact: no YUV round trip
        chroma = "yuv444p" if self.width % 2 or self.height % 2 else "yuv420p"
        return chroma + ("10le" if deep else "")


def _encoder_options(settings: EncodeSettings) -> dict[str, str]:
    if settings.video_codec == "ffv1":
        return {}
    options = {"crf": str(settings.crf), "preset": settings.preset}
    if settings.video_codec == "libx265":
        options["x265-params"] = "log-level=error"  # x265 prints its settings to stderr otherwise
    return options


class SegmentWriter:
    """Encodes consecutive restored frames into one segment file (a folder of PNGs for 'png')."""

    def __init__(self, path: str, settings: EncodeSettings, fmt: VideoFormat) -> None:
        self._path, self._kind, self._fmt = path, settings.kind, fmt
        self._count = 0
        self._last_pts: int | None = None
        if self._kind == "png":
            os.makedirs(path)
            self._png = av.CodecContext.create("png", "w")
            self._png.width, self._png.height, self._png.pix_fmt = fmt.width, fmt.height, "rgb24"
            return
        # x264/x265 segments go in MP4 whatever the output: Matroska drops the decode timestamps
        # that the packet-copy assembly needs with B-frames.
        container = "mp4" if settings.video_codec != "ffv1" else _CONTAINERS[self._kind]
        self._container = av.open(path, "w", format=container)
        stream = self._container.add_stream(settings.video_codec, rate=fmt.rate, options=_encoder_options(settings))
        stream.width, stream.height, stream.pix_fmt = fmt.width, fmt.height, fmt.pix_fmt(settings)
        stream.time_base = fmt.time_base
        stream.codec_context.time_base = fmt.time_base
        if settings.video_codec == "libx265" and self._kind == "mp4":
            stream.codec_tag = "hvc1"  # what Apple players require of H.265 in MP4
        # The codec context's tags are what the encoder writes into the bitstream (H.264 VUI).
        out_tags, ctx = tags(stream.pix_fmt, fmt.colour, fmt.height), stream.codec_context
        ctx.colorspace, ctx.color_range = out_tags.matrix, out_tags.range
        ctx.color_primaries, ctx.color_trc = out_tags.primaries, out_tags.trc
        self._stream = stream

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Append one frame with the source's timestamp."""
        if self._kind == "png":
            path = os.path.join(self._path, f"{self._count:08d}.png")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            with open(path, "wb") as f:
                for packet in self._png.encode(frame):
                    f.write(bytes(packet))
        else:
            # Encoders need strictly increasing timestamps; a broken source may repeat one.
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1
            self._last_pts = pts
            frame = rgb_to_frame(rgb, self._stream.pix_fmt, self._fmt.colour)
            frame.pts, frame.time_base = pts, self._fmt.time_base
            self._container.mux(self._stream.encode(frame))
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._kind != "png":
            self._container.mux(self._stream.encode(None))
            self._container.close()

    def abort(self) -> None:
        """Drop what was written: an unfinished segment is never kept."""
        if self._kind != "png":
            try:
                self._container.close()
            except av.FFmpegError:
                pass
        if os.path.isdir(self._path):
            shutil.rmtree(self._path)
        elif os.path.exists(self._path):
            os.remove(self._path)


def _packets(container: av.container.InputContainer, streams: list,
             warn: Callable[[str], None] | None = None) -> Iterator[av.Packet]:
    """The packets of `streams` in file order; with `warn`, a read error ends them with a warning
    (a truncated source still gets the audio that is there)."""
    if not streams:  # demux() with no streams would read every stream
        return
    try:
        for packet in container.demux(*streams):
            if packet.dts is not None and packet.size:  # skip the demuxer's empty flush packets
                yield packet
    except av.FFmpegError as e:
        if warn is None:
            raise
        warn(f"copying audio/subtitles stopped early: {e}")


def _seconds(packet: av.Packet) -> float:
    return float(packet.dts * packet.time_base)


def _copyable_streams(source: av.container.InputContainer, out: av.container.OutputContainer | None,
                      warn: Callable[[str], None]) -> list:
    """The source's audio and subtitle streams the output can hold untouched; a warning for each other."""
    keep = []
    for stream in source.streams:
        if stream.type not in ("audio", "subtitle"):
            continue
        name = stream.codec_context.name if stream.codec_context else "unknown"
        if out is None:
            warn(f"{stream.type} stream #{stream.index} ({name}) dropped: an image sequence has no {stream.type}")
        elif name not in out.supported_codecs:
            warn(f"{stream.type} stream #{stream.index} ({name}) dropped: {out.format.name} cannot hold it "
                 f"without re-encoding (write .mkv to keep it)")
        else:
            keep.append(stream)
    return keep


# Tags a muxer writes for itself; copying the source's would describe the wrong file.
_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration"}


def _copy_tags(source_path: str, out: av.container.OutputContainer, video: av.VideoStream) -> None:
    """Carry over what describes the content: container and video stream tags (title, language,
    creation time...) and the display rotation (phone videos are stored sideways)."""
    # A container of its own: decoding a frame here must not move the packet copy's position.
    with open_input(source_path) as source:
        out.metadata.update({k: v for k, v in source.metadata.items() if k not in _MUXER_TAGS})
        src_video = source.streams.video[0]
        video.metadata.update({k: v for k, v in src_video.metadata.items() if k not in _MUXER_TAGS})
        try:
            first = next(source.decode(src_video), None)
        except av.FFmpegError:  # an unreadable first frame: nothing to carry over
            first = None
        if first is not None and first.rotation:
            video.set_display_rotation(first.rotation)


def _copy_chapters_and_attachments(source: av.container.InputContainer, out: av.container.OutputContainer,
                                   kind: str, warn: Callable[[str], None]) -> None:
    """Chapters go into either container; attachments (fonts for subtitles, cover art) only into
    Matroska, the one container that holds them: elsewhere each is dropped with a warning."""
    chapters = source.chapters()
    if chapters:
        out.set_chapters(chapters)
    for stream in source.streams:
        if stream.type != "attachment":
            continue
        if kind == "mkv":
            out.add_attachment(stream.name, stream.mimetype, stream.data)
        else:
            warn(f"attachment '{stream.name}' ({stream.mimetype}) dropped: .{kind} cannot hold attachments "
                 f"(write .mkv to keep it)")


def _assemble_images(segments: list[str], output_tmp: str, source_path: str, warn: Callable[[str], None]) -> None:
    with open_input(source_path) as source:
        _copyable_streams(source, None, warn)
    os.makedirs(output_tmp)
    n = 0
    for segment in segments:
        for name in sorted(os.listdir(segment)):
            n += 1
            os.replace(os.path.join(segment, name), os.path.join(output_tmp, f"{n:08d}.png"))


def assemble(segments: list[str], output_tmp: str, kind: str, source_path: str,
             warn: Callable[[str], None]) -> None:
    """Join the segments by packet copy into `output_tmp` (a folder for 'png') and mux the
    source's audio and subtitle packets in without re-encoding, interleaved by time."""
    if kind == "png":
        _assemble_images(segments, output_tmp, source_path, warn)
        return
    try:
        _assemble_video(segments, output_tmp, kind, source_path, warn, copy_side_streams=True)
    except av.FFmpegError as e:
        # The muxer's codec list is not the last word (mp4 lists PCM, then may refuse its channel
        # layout when finishing the file): keep the restored video rather than lose everything.
        os.remove(output_tmp)
        warn(f"the source's audio/subtitles could not be copied into .{kind} ({e}); written without them "
             f"(.mkv keeps them)")
        _assemble_video(segments, output_tmp, kind, source_path, warn, copy_side_streams=False)


def _assemble_video(segments: list[str], output_tmp: str, kind: str, source_path: str,
                    warn: Callable[[str], None], copy_side_streams: bool) -> None:
    with av.open(output_tmp, "w", format=_CONTAINERS[kind]) as out, open_input(source_path) as source:
        inputs = [av.open(s) for s in segments]
        try:
            video = out.add_stream_from_template(inputs[0].streams.video[0])
            _copy_tags(source_path, out, video)
            copied = _copyable_streams(source, out, warn) if copy_side_streams else []
            targets = {}
            for stream in copied:
                targets[stream.index] = out.add_stream_from_template(stream)
                targets[stream.index].metadata.update(stream.metadata)  # language, title
            if copy_side_streams:
                _copy_chapters_and_attachments(source, out, kind, warn)
            side = _packets(source, copied, warn)
            pending = next(side, None)
            last_dts = None
            for segment in inputs:
                for packet in _packets(segment, [segment.streams.video[0]]):
                    # With B-frames each segment starts with decode timestamps before its first
                    # frame, which under a variable frame rate can reach back to the previous
                    # segment's last one; nudging them forward keeps them increasing (and <= pts).
                    if last_dts is not None and packet.dts <= last_dts:
                        packet.dts = last_dts + 1
                    last_dts = packet.dts
                    # Mux the side packets that come before this video packet, so the file is
                    # interleaved as it is written instead of buffered whole in the muxer.
                    while pending is not None and _seconds(pending) <= _seconds(packet):
                        pending.stream = targets[pending.stream.index]
                        out.mux(pending)
                        pending = next(side, None)
                    packet.stream = video
                    out.mux(packet)
            while pending is not None:
                pending.stream = targets[pending.stream.index]
                out.mux(pending)
                pending = next(side, None)
        finally:
            for c in inputs:
                c.close()
