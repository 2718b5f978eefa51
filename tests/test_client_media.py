"""Decoding and encoding on real video, no server: what goes in comes out with the same frame
count, timestamps, colour, audio and subtitle packets. Also home of `make_clip`, which builds
small test clips from the real carphone sequence with PyAV (other client tests import it)."""
from __future__ import annotations

import subprocess
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from client.colour import BT601_525, RANGE_LIMITED, Colour
from client.compare import split_screen
from client.decode import Source
from client.encode import EncodeSettings, SegmentWriter, VideoFormat, assemble
from client.errors import RestoreError
from client.job import mask_frames
from training.clips import clip_dir

CLIPS = clip_dir()
CARPHONE = CLIPS / "carphone_pristine.mp4"
BUNNY = CLIPS / "bigbuckbunny.mp4"


def real_frames(count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first `count` RGB frames of the carphone clip, cropped to `size` (h, w) if given."""
    frames = []
    with av.open(str(CARPHONE)) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(np.ascontiguousarray(rgb[: size[0], : size[1]]) if size else rgb)
            if len(frames) == count:
                break
    return frames


def make_clip(path: Path, frames: list[np.ndarray], *, codec: str = "libx264", pix_fmt: str = "yuv420p",
              rate: int = 25, pts: list[int] | None = None, time_base: Fraction | None = None,
              audio: bool = False, subtitles: bool = False, colour: Colour | None = None,
              options: dict | None = None, rotation: int = 0, title: str | None = None) -> Path:
    """Encode RGB `frames` into `path` (container from the extension), optionally with an AAC
    sine track, SubRip subtitles (mkv), explicit timestamps and colour tags."""
    container_format = "matroska" if path.suffix == ".mkv" else None
    with av.open(str(path), "w", format=container_format) as out:
        video = out.add_stream(codec, rate=rate, options=options or {})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        if title:
            out.metadata["title"] = title
        tb = time_base or Fraction(1, rate)
        video.codec_context.time_base = tb
        if colour:
            ctx = video.codec_context
            ctx.colorspace, ctx.color_range = colour.matrix, colour.range
            ctx.color_primaries, ctx.color_trc = colour.primaries, colour.trc
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound:
            sound.layout = "mono"
        text = out.add_mux_stream("subrip") if subtitles else None
        if text:
            text.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if colour:  # swscale numbers BT.709 1 and both BT.601 tags (5, 6) 5
                frame = frame.reformat(format=pix_fmt, dst_colorspace={1: 1, 5: 5, 6: 5}[colour.matrix],
                                       dst_color_range=colour.range)
                frame.colorspace, frame.color_range = colour.matrix, colour.range
            frame.pts, frame.time_base = (pts[i] if pts else i), tb
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound:
            seconds = len(frames) / rate
            t = np.arange(int(seconds * 48000)) / 48000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[None, start:start + 1024]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, start
                out.mux(sound.encode(af))
            out.mux(sound.encode(None))
        if text:
            for k in range(0, len(frames), 10):
                packet = av.Packet(f"line {k}".encode())
                packet.pts = packet.dts = int(k / rate * 1000)
                packet.duration, packet.stream, packet.time_base = 200, text, text.time_base
                out.mux(packet)
    return path


def decode_all(path: Path) -> tuple[list[np.ndarray], list[float], list[str]]:
    """RGB frames, presentation times in seconds, and warnings of `path` as the client decodes it."""
    warnings: list[str] = []
    with Source(str(path), warnings.append) as source:
        frames = list(source.frames())
        times = [float(f.pts * source.info.time_base) for f in frames]
    return [f.rgb for f in frames], times, warnings


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(*streams) if p.size] if streams else []


def first_frame_time(path: Path) -> float:
    """Presentation time in seconds of the first video frame of `path`."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return float(frame.pts * frame.time_base)


def assert_same_audio(out: Path, source: Path) -> None:
    """`out` holds the source's audio packets unchanged and at the same times: pts, dts and
    duration (where the source states one) within 1 ms, measured from each file's first video
    frame, so an audio/video offset fails even when payloads match."""
    def timeline(path: Path) -> list[tuple[bytes, float, float, float]]:
        start = first_frame_time(path)
        with av.open(str(path)) as c:
            return [(bytes(p), float(p.pts * p.time_base) - start, float(p.dts * p.time_base) - start,
                     float(p.duration * p.time_base)) for p in c.demux(c.streams.audio[0]) if p.size]

    got, want = timeline(out), timeline(source)
    assert len(want) > 0 and [g[0] for g in got] == [w[0] for w in want], "audio payloads differ"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g[1] == pytest.approx(w[1], abs=1e-3) and g[2] == pytest.approx(w[2], abs=1e-3), \
            f"audio packet {i}: pts/dts {g[1:3]} s after the first frame, source {w[1:3]}"
        assert w[3] == 0 or g[3] == pytest.approx(w[3], abs=1e-3), f"audio packet {i}: duration {g[3]}, source {w[3]}"


def passthrough(source: Path, output: Path, kind: str, segment_frames: int = 8, limit: int | None = None,
                **settings) -> list[str]:
    """The client's encode path with the identity as restoration: decode (the first `limit`
    frames), write segments, assemble."""
    warnings: list[str] = []
    with Source(str(source), warnings.append) as src:
        info = src.info
        fmt = VideoFormat(info.width, info.height, info.time_base, info.rate, info.colour, info.bits)
        segments, writer = [], None
        for frame in src.frames():
            if frame.index == limit:
                break
            if frame.index % segment_frames == 0:
                if writer:
                    writer.close()
                segments.append(str(output.parent / f"seg{len(segments)}.{kind}"))
                writer = SegmentWriter(segments[-1], EncodeSettings(kind, **settings), fmt)
            writer.write(frame.rgb, frame.pts)
        writer.close()
    assemble(segments, str(output), kind, str(source), warnings.append)
    return warnings


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


# --- decoding ---------------------------------------------------------------------------------

def test_decodes_every_frame_of_a_real_clip_with_timestamps():
    frames, times, warnings = decode_all(CARPHONE)
    assert len(frames) == 120 and frames[0].shape == (144, 176, 3) and frames[0].dtype == np.uint8
    assert times[1] == pytest.approx(1001 / 30000) and all(b > a for a, b in zip(times, times[1:]))
    assert warnings == []


def test_ten_bit_input_is_restored_in_8_bits_written_in_10_and_said_plainly(tmp_path):
    clip = make_clip(tmp_path / "ten.mkv", real_frames(3), codec="ffv1", pix_fmt="yuv420p10le")
    frames, _, warnings = decode_all(clip)
    assert len(frames) == 3 and frames[0].dtype == np.uint8
    assert any("10-bit" in w and "8 bits" in w for w in warnings)
    assert psnr(frames[0], real_frames(1)[0]) > 35
    for kind, codec, pix_fmt in [("mp4", None, "yuv420p10le"), ("mp4", "libx265", "yuv420p10le"),
                                 ("mkv", None, "gbrp10le")]:
        out = tmp_path / f"out-{codec}.{kind}"
        passthrough(clip, out, kind, codec=codec)
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == pix_fmt, (kind, codec)
        assert psnr(decode_all(out)[0][0], frames[0]) > 35, (kind, codec)


def test_greyscale_input_becomes_rgb(tmp_path):
    clip = make_clip(tmp_path / "grey.mkv", real_frames(2), codec="ffv1", pix_fmt="gray")
    frames, _, warnings = decode_all(clip)
    assert frames[0].shape == (144, 176, 3)
    assert (frames[0][..., 0] == frames[0][..., 1]).all() and any("greyscale" in w for w in warnings)


def test_alpha_image_sequence_is_read_and_alpha_dropped(tmp_path):
    rgb = real_frames(3)
    for i, f in enumerate(rgb):
        rgba = np.dstack([f, np.full(f.shape[:2], 128, np.uint8)])
        cv2.imwrite(str(tmp_path / f"{i + 1:05d}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    frames, _, warnings = decode_all(tmp_path / "%05d.png")
    assert len(frames) == 3 and all((a == b).all() for a, b in zip(frames, rgb))
    assert any("alpha" in w for w in warnings)


def test_truncated_file_restores_what_decodes_and_says_where_it_stopped(tmp_path):
    clip = make_clip(tmp_path / "full.mkv", real_frames(60), codec="ffv1")
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    frames, _, warnings = decode_all(cut)
    assert 10 < len(frames) < 60
    assert any(str(len(frames)) in w for w in warnings), warnings


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "does not exist"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a video"),
    (lambda d: d, "is a directory"),
    (lambda d: d / "%05d.png", "no images match"),
])
def test_unreadable_inputs_fail_with_one_clear_line(tmp_path, make, message):
    with pytest.raises(RestoreError, match=message) as e:
        Source(str(make(tmp_path)))
    assert "\n" not in str(e.value)


# --- encoding and muxing ----------------------------------------------------------------------

def test_mp4_round_trip_keeps_frames_timestamps_rate_and_audio_packets(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", real_frames(30), audio=True)
    out = tmp_path / "out.mp4"
    passthrough(clip, out, "mp4", segment_frames=8)
    src_frames, src_times, _ = decode_all(clip)
    out_frames, out_times, _ = decode_all(out)
    assert len(out_frames) == 30 and out_times == pytest.approx(src_times, abs=1e-6)
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 25
    assert len(packets(clip, "audio")) > 30
    assert_same_audio(out, clip)  # copied, not re-encoded, not shifted
    assert min(psnr(a, b) for a, b in zip(src_frames, out_frames)) > 38


def test_the_aac_track_of_a_real_film_clip_is_copied_packet_for_packet(tmp_path):
    out = tmp_path / "bunny.mp4"
    passthrough(BUNNY, out, "mp4", limit=5)  # 5 restored frames are enough to carry the whole track
    assert len(packets(BUNNY, "audio")) == 249
    assert_same_audio(out, BUNNY)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac" and c.streams.audio[0].sample_rate == 48000


def test_mkv_is_lossless_and_keeps_audio_and_subtitles(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", real_frames(20), codec="ffv1", audio=True, subtitles=True)
    out = tmp_path / "out.mkv"
    warnings = passthrough(clip, out, "mkv")
    assert warnings == []
    src, _, _ = decode_all(clip)
    restored, _, _ = decode_all(out)
    assert len(restored) == 20 and all((a == b).all() for a, b in zip(src, restored))
    assert packets(out, "subtitle") == packets(clip, "subtitle") == [b"line 0", b"line 10"]
    assert_same_audio(out, clip)


@pytest.mark.parametrize("kind, codec, name", [("mp4", "libx265", "hevc"), ("mkv", "libx264", "h264"),
                                               ("mp4", None, "h264"), ("mkv", None, "ffv1")])
def test_codec_choice_is_what_gets_written(tmp_path, kind, codec, name):
    clip = make_clip(tmp_path / "in.mkv", real_frames(6), codec="ffv1")
    out = tmp_path / f"out.{kind}"
    passthrough(clip, out, kind, codec=codec)
    with av.open(str(out)) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.name == name and ctx.pix_fmt == ("bgr0" if name == "ffv1" else "yuv420p")
    restored = decode_all(out)[0]
    assert len(restored) == 6 and psnr(restored[0], real_frames(1)[0]) > 35


def test_a_codec_the_container_cannot_hold_is_refused():
    with pytest.raises(RestoreError, match="ffv1 cannot be written to .mp4"):
        EncodeSettings("mp4", "ffv1").check()
    with pytest.raises(RestoreError, match="--pix-fmt rgb24: libx264 takes"):
        EncodeSettings("mp4", pix_fmt="rgb24").check()


def test_chapters_and_attachments_are_kept(tmp_path):
    """Chapters and a font attachment, added with the ffmpeg CLI (PyAV reads them back)."""
    clip = make_clip(tmp_path / "plain.mkv", real_frames(10), codec="ffv1", rate=5)
    (tmp_path / "chapters.txt").write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n"
                                           "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n")
    (tmp_path / "font.ttf").write_bytes(b"not really a font")
    rich = tmp_path / "rich.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-i", str(tmp_path / "chapters.txt"),
                    "-map_chapters", "1", "-c", "copy", "-attach", str(tmp_path / "font.ttf"),
                    "-metadata:s:t", "mimetype=font/ttf", str(rich)], check=True)
    titles = lambda path: [c["metadata"]["title"] for c in av.open(str(path)).chapters()]  # noqa: E731
    assert passthrough(rich, tmp_path / "out.mkv", "mkv") == []
    assert titles(tmp_path / "out.mkv") == ["One", "Two"]
    with av.open(str(tmp_path / "out.mkv")) as c:
        [font] = [s for s in c.streams if s.type == "attachment"]
        assert (font.name, font.mimetype, bytes(font.data)) == ("font.ttf", "font/ttf", b"not really a font")
    warnings = passthrough(rich, tmp_path / "out.mp4", "mp4")
    assert titles(tmp_path / "out.mp4") == ["One", "Two"]
    assert any("attachment 'font.ttf'" in w and "dropped" in w for w in warnings)


def test_split_screen_shows_the_input_left_and_the_restored_frame_right():
    before = np.full((4, 6, 3), 10, np.uint8)
    after = np.full((16, 24, 3), 200, np.uint8)
    out = split_screen(before, after)
    assert out.shape == after.shape
    assert (out[:, :11] == 10).all() and (out[:, 11:13] == 255).all() and (out[:, 13:] == 200).all()
    with pytest.raises(ValueError, match="not an integer scale"):
        split_screen(before, after[:, :23])


def test_mp4_output_drops_subtitles_it_cannot_hold_and_says_so(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", real_frames(10), codec="ffv1", subtitles=True)
    warnings = passthrough(clip, tmp_path / "out.mp4", "mp4")
    assert packets(tmp_path / "out.mp4", "subtitle") == []
    assert any("subtitle" in w and "dropped" in w and ".mkv" in w for w in warnings)


def test_variable_frame_rate_timestamps_survive(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]  # ms: gaps of 1-5 frames
    clip = make_clip(tmp_path / "vfr.mkv", real_frames(10), codec="ffv1", pts=pts, time_base=Fraction(1, 1000))
    for kind in ("mp4", "mkv"):
        out = tmp_path / f"out.{kind}"
        passthrough(clip, out, kind, segment_frames=4)
        _, times, _ = decode_all(out)
        assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3), kind


def colour_shift(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Mean |per-channel mean difference| in grey levels between two frame lists."""
    return np.mean([np.abs((x.astype(float) - y).mean(axis=(0, 1))) for x, y in zip(a, b)], axis=0)


@pytest.mark.parametrize("colour", [Colour(1, 1, 1, 1), Colour(1, 2, 1, 1), Colour(6, 1, 6, 6), Colour(5, 1, 5, 6), None],
                         ids=["bt709-limited", "bt709-full", "bt601-525", "bt601-625", "untagged"])
def test_colour_tags_are_kept_and_no_colour_shift(tmp_path, colour):
    """Decoded with the source's matrix and range (untagged SD: BT.601 limited, what the encoder
    used and players assume) and encoded back with them: no shift against the RGB frames the
    clip was made from, and the output is tagged with what it was converted with."""
    original = real_frames(10)
    clip = make_clip(tmp_path / "in.mp4", original, colour=colour, options={"crf": "0"})
    out = tmp_path / "out.mp4"
    passthrough(clip, out, "mp4", crf=4)  # near-lossless: a shift would be the conversion's, not x264's
    with av.open(str(out)) as c:
        assert Colour.of(c.streams.video[0].codec_context) == (colour or Colour(BT601_525, RANGE_LIMITED, 2, 2))
    src, _, _ = decode_all(clip)
    restored, _, _ = decode_all(out)
    assert (colour_shift(src, original) <= 1.5).all(), colour_shift(src, original)  # 4:2:0, 8-bit rounding
    assert (colour_shift(restored, src) <= 1.0).all(), colour_shift(restored, src)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (143, 175)])
@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_odd_sizes_keep_their_size(tmp_path, size, kind):
    clip = make_clip(tmp_path / "in.mkv", real_frames(3, size), codec="ffv1")
    out = tmp_path / f"out.{kind}"
    passthrough(clip, out, kind)
    frames, _, _ = decode_all(out)
    assert len(frames) == 3 and frames[0].shape == (*size, 3)
    if kind == "mkv":
        assert all((a == b).all() for a, b in zip(frames, decode_all(clip)[0]))


# --- inpainting masks -------------------------------------------------------------------------

def test_a_still_mask_applies_to_every_frame_and_is_binarised(tmp_path):
    mask = np.zeros((144, 176, 3), np.uint8)
    mask[10:20, 30:60] = 200  # light grey counts as "fill"
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    masks = list(islice(mask_frames(str(tmp_path / "mask.png"), (144, 176), print), 5))
    assert len(masks) == 5 and masks[0].shape == (144, 176, 1)
    assert set(np.unique(masks[4])) == {0, 255} and masks[4][15, 40, 0] == 255 and masks[4][0, 0, 0] == 0


def test_a_mask_of_another_size_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "mask.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(RestoreError, match="mask .* is 10x10, the video is 176x144"):
        next(mask_frames(str(tmp_path / "mask.png"), (144, 176), print))


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_title_and_display_rotation_are_kept(tmp_path, kind):
    clip = make_clip(tmp_path / "phone.mp4", real_frames(3), rotation=90, title="At the beach")
    out = tmp_path / f"out.{kind}"
    passthrough(clip, out, kind)
    with av.open(str(out)) as c:
        assert c.metadata.get("title", c.metadata.get("TITLE")) == "At the beach"
        assert next(c.decode(video=0)).rotation == 90


def test_image_sequence_input_to_a_video_file(tmp_path):
    for i, f in enumerate(real_frames(4), start=1):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), f[:, :, ::-1])
    out = tmp_path / "out.mkv"
    passthrough(tmp_path / "%05d.png", out, "mkv")
    frames, times, _ = decode_all(out)
    assert all((a == b).all() for a, b in zip(frames, real_frames(4))) and times == pytest.approx([0, .04, .08, .12])


def test_audio_an_mp4_cannot_hold_is_dropped_with_a_warning_and_mkv_keeps_it(tmp_path):
    clip = tmp_path / "pcm.mkv"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=48000)
        sound.layout = "stereo"  # stored in mkv as "2 channels", a layout the mp4 muxer refuses
        for i, rgb in enumerate(real_frames(5, (48, 64))):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 19200), np.int16), format="s16", layout="stereo")
        samples.sample_rate, samples.pts = 48000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode(None))
        out.mux(video.encode(None))
    warnings = passthrough(clip, tmp_path / "out.mp4", "mp4")
    assert any("audio" in w and "without them" in w and ".mkv keeps them" in w for w in warnings), warnings
    assert packets(tmp_path / "out.mp4", "audio") == []
    assert len(decode_all(tmp_path / "out.mp4")[0]) == 5
    assert passthrough(clip, tmp_path / "out.mkv", "mkv") == []
    assert_same_audio(tmp_path / "out.mkv", clip)
