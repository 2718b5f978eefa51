"""Command line: `python -m client.restore INPUT... -o OUTPUT --task denoise --url HOST:PORT`.

Restores one file into OUTPUT, or many (several inputs, or a folder) into an output folder. With
several --url, files are spread over the servers: each worker takes the next file and streams it
whole to its own server, since a stream's window state lives on one server. Any failure ends in
one line `restore: error: ...` and a non-zero exit status."""
from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from typing import Callable

import av
from tqdm import tqdm
from tritonclient.utils import InferenceServerException

from .decode import Source, is_pattern
from .encode import EncodeSettings, output_kind
from .errors import Interrupted, RestoreError
from .job import Job, Result, check_paths, run_job
from .server import connect, describe_task

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv",
                    ".wmv", ".mpg", ".mpeg", ".y4m", ".3gp", ".ogv"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m client.restore", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Restore videos through a restore task served by NVIDIA Triton.\n"
                    "Audio and subtitle streams are copied untouched; frame count, timestamps and colour tags are kept.",
        epilog="examples:\n"
               "  python -m client.restore noisy.mp4 -o clean.mp4 --task denoise\n"
               "  python -m client.restore frames/%05d.png -o restored.mkv --url 10.0.0.5:8001\n"
               "  python -m client.restore a.mp4 b.mp4 clips/ -o restored/ --url host1:8001 --url host2:8001\n"
               "  python -m client.restore big.mp4 -o big_clean.mp4 --resume   # after an interruption")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file (anything FFmpeg reads), image-sequence pattern such as frames/%%05d.png, "
                        "or a folder of videos")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .mp4 (H.264), .mkv (FFV1, lossless) or a pattern such as out/%%05d.png; "
                        "with several inputs or a folder, an output folder (created if missing)")
    p.add_argument("--task", default="denoise", help="served task (ensemble model name): denoise, deblur, sr4, "
                                                     "inpaint, ... (default: %(default)s)")
    p.add_argument("--url", action="append", help="Triton gRPC address host:port; repeat to spread files over "
                                                  "several servers (default: 127.0.0.1:8001)")
    p.add_argument("--crf", type=int, default=18, choices=range(0, 52), metavar="0-51",
                   help="H.264 quality for .mp4, lower is better (default: %(default)s)")
    p.add_argument("--preset", default="medium", choices=X264_PRESETS, metavar="PRESET",
                   help="x264 speed preset for .mp4: slower is smaller at the same quality "
                        "(ultrafast ... placebo; default: %(default)s)")
    p.add_argument("--format", choices=("mp4", "mkv", "png"), default="mp4",
                   help="output format when OUTPUT is a folder (default: %(default)s)")
    p.add_argument("--mask", help="inpaint only: mask image, video or pattern, white = pixels to fill "
                                  "(a still image applies to every frame; a mask video needs one frame per frame)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted restore of the same input and output from its last "
                        "completed segment (the result equals an uninterrupted run)")
    p.add_argument("--segment-frames", type=int, default=300, metavar="N",
                   help="frames per independently encoded segment: the most work --resume can lose "
                        "(default: %(default)s)")
    p.add_argument("--max-in-flight", type=int, metavar="N",
                   help="frames sent but not yet answered, which bounds memory (default: 2 x window + 8, "
                        "fewer for frames so large that this would pass 2 GiB)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up when the server sends nothing for S seconds (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary lines")
    args = p.parse_args(argv)
    args.url = args.url or ["127.0.0.1:8001"]
    if args.segment_frames < 1:
        p.error("--segment-frames must be at least 1")
    return args


def _expand(inputs: list[str]) -> tuple[list[str], bool]:
    """Input files (folders expanded to the videos in them) and whether any input was a folder."""
    files, had_folder = [], False
    for path in inputs:
        if os.path.isdir(path):
            had_folder = True
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS)
            if not found:
                raise RestoreError(f"folder '{path}' holds no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
            files.extend(found)
        else:
            files.append(path)
    return files, had_folder


def plan_outputs(inputs: list[str], output: str, fmt: str) -> list[tuple[str, str]]:
    """(input, output) pairs: one output file, or one per input inside an output folder."""
    files, had_folder = _expand(inputs)
    if len(files) == 1 and not had_folder and not output.endswith(os.sep) and not os.path.isdir(output):
        return [(files[0], output)]
    if os.path.exists(output) and not os.path.isdir(output):
        raise RestoreError(f"several inputs need an output folder, and '{output}' is a file")
    pairs, seen = [], {}
    for path in files:
        # An image sequence is named after its folder: frames/%05d.png -> frames.
        named = os.path.dirname(os.path.abspath(path)) if is_pattern(path) else path
        stem = os.path.splitext(os.path.basename(named))[0]
        if stem in seen:
            raise RestoreError(f"'{seen[stem]}' and '{path}' would both be written as '{stem}' in '{output}'")
        seen[stem] = path
        target = os.path.join(output, stem, "%05d.png") if fmt == "png" else os.path.join(output, f"{stem}.{fmt}")
        pairs.append((path, target))
    for _, target in pairs:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    return pairs


def _restore_on(worker: int, url: str, args: argparse.Namespace, todo: queue.Queue,
                report: Callable[[str, str, str], None], failures: list, server_problems: list) -> None:
    """Worker: restore files from `todo` one after another on the server at `url`. A server that
    cannot serve the task takes no files, so they go to the other workers."""
    try:
        client = connect(url)
    except RestoreError as e:
        server_problems.append(str(e))
        return
    try:
        try:
            task = describe_task(client, url, args.task)
        except RestoreError as e:
            server_problems.append(str(e))
            return
        while True:
            try:
                source, target = todo.get_nowait()
            except queue.Empty:
                return
            try:
                job = Job(source, target, args.task, EncodeSettings(output_kind(target), args.crf, args.preset),
                          mask=args.mask, resume=args.resume, segment_frames=args.segment_frames,
                          max_in_flight=args.max_in_flight, stall_timeout_s=args.timeout)
                result = run_job(job, client, url, task, lambda msg: report("warning", source, msg),
                                 progress=not args.quiet, bar_position=worker)
            except Interrupted:
                raise  # Ctrl-C: no further files either
            except RestoreError as e:
                failures.append((source, str(e)))
                continue
            except (av.FFmpegError, OSError, InferenceServerException) as e:
                failures.append((source, f"{type(e).__name__}: {e}"))
                continue
            if not args.quiet:
                report("done", source, _summary(result))
    finally:
        client.close()


def _run_workers(urls: list[str], args: argparse.Namespace, todo: queue.Queue,
                 report: Callable[[str, str, str], None], failures: list, server_problems: list) -> None:
    """One worker per server URL, all taking files from `todo`."""
    if todo.empty():
        return
    if len(urls) == 1:
        # In the main thread, so Ctrl-C reaches the job, which keeps its completed segments.
        _restore_on(0, urls[0], args, todo, report, failures, server_problems)
        return
    workers = [threading.Thread(target=_restore_on, args=(i, u, args, todo, report, failures, server_problems),
                                daemon=True)
               for i, u in enumerate(urls)]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():  # join with a timeout, so Ctrl-C is not deferred until the end
            w.join(0.2)


def _summary(result: Result) -> str:
    rate = result.restored_now / result.seconds if result.seconds else 0.0
    return f"wrote {result.output} ({result.frames} frames; {result.restored_now} restored now at {rate:.1f} frames/s)"


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit status: 0 all restored, 1 something failed, 130 interrupted."""
    args = parse_args(argv)
    try:
        return _restore_all(args)
    except Interrupted as e:  # Ctrl-C inside a job, which says what it kept
        print(f"restore: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("restore: error: interrupted (the same command with --resume continues from the last completed "
              "segment)", file=sys.stderr)
    return 130


def _restore_all(args: argparse.Namespace) -> int:
    try:
        pairs = plan_outputs(args.inputs, args.output, args.format)
    except (RestoreError, OSError) as e:
        print(f"restore: error: {e}", file=sys.stderr)
        return 1
    many = len(pairs) > 1
    lock = threading.Lock()

    def report(level: str, source: str, message: str) -> None:
        with lock:
            tqdm.write(f"restore: {level}: {source + ': ' if many and source else ''}{message}", file=sys.stderr)

    # Check every file before contacting a server: a bad input or output fails at once, and
    # alone (the other files still get restored).
    failures: list[tuple[str, str]] = []
    todo: queue.Queue = queue.Queue()
    for source, target in pairs:
        try:
            check_paths(source, target)
            Source(source).close()
        except RestoreError as e:
            failures.append((source, str(e)))
            continue
        todo.put((source, target))
    server_problems: list[str] = []
    _run_workers(args.url, args, todo, report, failures, server_problems)
    left = todo.qsize()  # files no server could take
    for source, message in failures:
        report("error", source, message)
    for problem in server_problems:
        report("error" if left else "warning", "", problem)
    if left and many:
        report("error", "", f"{left} file(s) not restored: no server could take them")
    return 1 if failures or left else 0


if __name__ == "__main__":
    sys.exit(main())
