"""Command line: `python -m client.restore INPUT... -o OUTPUT --task denoise --url HOST:PORT`.

Restores one file into OUTPUT, or many (several inputs, or a folder) into an output folder. With
several --url, files are spread over the servers: each worker takes the next file and streams it
whole to its own server, since a stream's window state lives on one server. Any failure ends in
one line `restore: error: ...` and a non-zero exit status."""
from __future__ import annotations

import argparse
import math
import os
import queue
import sys
import threading
from typing import Callable

# gRPC core logs to stderr on its own (fork warnings, connection resets), which would break the
# one-line errors; GRPC_VERBOSITY=ERROR in the environment brings them back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import av  # noqa: E402  (after the environment above, which gRPC reads when it loads)
from tqdm import tqdm  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from .decode import Source, first_number, is_pattern  # noqa: E402
from .encode import CODECS, EncodeSettings, output_kind  # noqa: E402
from .errors import Interrupted, RestoreError, ServerError  # noqa: E402
from .job import Job, Result, check_paths, run_job  # noqa: E402
from .server import DEFAULT_PORT, Endpoint, connect, describe_task, parse_address  # noqa: E402

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv",
                    ".wmv", ".mpg", ".mpeg", ".y4m", ".3gp", ".ogv"}


def number(kind: type, low: float, high: float = math.inf) -> Callable[[str], int | float]:
    """An argparse type: a finite `kind` between `low` and `high`, else a one-line usage error."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            span = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {span}")
        return value
    return parse


def header(text: str) -> tuple[str, str]:
    """--header KEY=VALUE as a gRPC metadata pair (gRPC wants lower-case keys)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return key.strip().lower(), value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, like every other refusal
        self.exit(2, f"restore: error: {message} (see restore --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(
        prog="restore", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Restore videos through a restore task served by NVIDIA Triton.\n"
                    "Audio and subtitle streams, chapters and attachments are copied untouched; frame count, "
                    "timestamps, colour tags and bit depth are kept.",
        epilog="examples:\n"
               "  restore noisy.mp4 -o clean.mp4 --task denoise\n"
               "  restore frames/%05d.png -o restored.mkv --url 10.0.0.5\n"
               "  restore a.mp4 b.mp4 clips/ -o restored/ --url host1 --url host2\n"
               "  restore big.mp4 -o big_clean.mp4 --resume   # after an interruption\n"
               "  restore in.mp4 -o out.mp4 --url grpcs://restore.example.com:443 --header authorization='Bearer ...'\n"
               "  restore in.mp4 -o out.mp4 --compare before_after.mp4\n"
               "(python -m client.restore works the same from a checkout)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file (anything FFmpeg reads), image-sequence pattern such as frames/%%05d.png, "
                        "or a folder of videos")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .mp4 (H.264), .mkv (FFV1, lossless) or a pattern such as out/%%05d.png; "
                        "with several inputs or a folder, an output folder (created once the inputs are checked)")
    overwrite = p.add_mutually_exclusive_group()
    overwrite.add_argument("-y", dest="overwrite", action="store_const", const=True,
                           help="overwrite existing outputs without asking")
    overwrite.add_argument("-n", dest="overwrite", action="store_const", const=False,
                           help="never overwrite: an existing output is an error for that file (without -y or -n "
                                "the command asks, or refuses when it cannot ask)")
    p.add_argument("--task", default="denoise", help="served task (ensemble model name): denoise (sensor noise), deblock "
                                                     "(JPEG/H.264 compression artifacts), deblur (motion and defocus "
                                                     "blur), sr4 (x4 upscaling), inpaint (fills what --mask marks), "
                                                     "... (default: %(default)s)")
    p.add_argument("--url", action="append",
                   help=f"Triton gRPC address: host, host:port, grpc://host:port or grpcs://host:port (TLS); port "
                        f"{DEFAULT_PORT} if left out. Repeat to spread files over several servers; a file that "
                        f"fails on one is retried on another (default: 127.0.0.1:{DEFAULT_PORT})")
    p.add_argument("--ssl", action="store_true", help="connect with TLS (implied by grpcs:// and the files below)")
    p.add_argument("--root-certificates", metavar="PEM",
                   help="TLS: CA certificate(s) to trust the server with (default: the system's)")
    p.add_argument("--private-key", metavar="PEM", help="TLS: the client's private key, for servers that check clients")
    p.add_argument("--certificate-chain", metavar="PEM", help="TLS: the client's certificate chain")
    p.add_argument("--header", action="append", type=header, default=[], metavar="KEY=VALUE",
                   help="gRPC header sent with every call, e.g. an auth token for a gateway; repeatable")
    p.add_argument("--codec", choices=sorted({c for codecs in CODECS.values() for c in codecs}),
                   help="video codec: libx264 (H.264) or libx265 (H.265) in .mp4 or .mkv, ffv1 (lossless) in "
                        ".mkv (default: libx264 for .mp4, ffv1 for .mkv)")
    p.add_argument("--pix-fmt", metavar="FORMAT",
                   help="output pixel format, e.g. yuv420p, yuv420p10le, yuv444p (default: 4:2:0, 4:4:4 for odd "
                        "sizes, in 10 bits when the input has more than 8; FFV1: RGB)")
    p.add_argument("--crf", type=number(int, 0, 51), default=16, metavar="0-51",
                   help="x264/x265 quality, lower is better (default: %(default)s)")
    p.add_argument("--preset", default="veryfast", choices=X264_PRESETS, metavar="PRESET",
                   help="x264/x265 speed preset: slower is smaller at the same quality "
                        "(ultrafast ... placebo; default: %(default)s)")
    p.add_argument("--format", choices=("mp4", "mkv", "png"), default="mp4",
                   help="output format when OUTPUT is a folder (default: %(default)s)")
    p.add_argument("--compare", metavar="OUT",
                   help="also write a split-screen video (.mp4 or .mkv): input on the left, restored on the right "
                        "(one input only)")
    p.add_argument("--mask", help="inpaint only: mask image, video or pattern, white = pixels to fill "
                                  "(a still image applies to every frame; a mask video needs one frame per frame)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted restore of the same input and output from its last "
                        "completed segment (the result equals an uninterrupted run)")
    p.add_argument("--segment-frames", type=number(int, 1), default=300, metavar="N",
                   help="frames per independently encoded segment: the most work --resume can lose "
                        "(default: %(default)s)")
    p.add_argument("--max-in-flight", type=number(int, 1), metavar="N",
                   help="frames sent but not yet answered, which bounds memory (default: 2 x window + 8, "
                        "fewer for frames so large that this would pass 2 GiB)")
    p.add_argument("--timeout", type=number(float, 0.1), default=60.0, metavar="S",
                   help="give up on a server that sends nothing for S seconds (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary lines")
    args = p.parse_args(argv)
    try:
        args.endpoints = endpoints(args)
        EncodeSettings(args.format if os.path.isdir(args.output) or len(args.inputs) > 1 else
                       _kind_or_format(args.output, args.format), args.codec, args.crf, args.preset,
                       args.pix_fmt).check()
        if args.compare:
            if len(args.inputs) > 1 or os.path.isdir(args.inputs[0]):
                raise RestoreError("--compare takes one input file")
            if args.resume:
                raise RestoreError("--compare and --resume do not go together (the comparison is written in one run)")
            if output_kind(args.compare) == "png":
                raise RestoreError("--compare writes a video: give it a .mp4 or .mkv name")
    except (RestoreError, ValueError) as e:
        p.exit(2, f"restore: error: {e}\n")
    return args


def _kind_or_format(output: str, fmt: str) -> str:
    """The output's kind from its name; an unknown name is reported later, with the file."""
    try:
        return output_kind(output)
    except RestoreError:
        return fmt


def endpoints(args: argparse.Namespace) -> list[Endpoint]:
    """The servers to use, each with the TLS files and headers (ValueError names a bad --url)."""
    files = (args.root_certificates, args.private_key, args.certificate_chain)
    for path in files:
        if path and not os.path.isfile(path):
            raise ValueError(f"TLS file '{path}' does not exist")
    if bool(args.private_key) != bool(args.certificate_chain):
        raise ValueError("--private-key and --certificate-chain go together (the client's key and certificate)")
    result = []
    for text in args.url or [f"127.0.0.1:{DEFAULT_PORT}"]:
        address, tls = parse_address(text)
        result.append(Endpoint(address, args.ssl or tls or any(files), *files, tuple(args.header)))
    return result


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
    """(input, output) pairs: one output file, or one per input inside an output folder (which
    `make_folders` creates, once the inputs are checked)."""
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
    return pairs


def make_folders(pairs: list[tuple[str, str]], single: bool) -> None:
    """Create the output folder (and a PNG sequence's subfolder) of each planned output."""
    if single:
        return  # a single output's folder must exist: creating it would hide a typo
    for _, target in pairs:
        os.makedirs(os.path.dirname(target), exist_ok=True)


def existing_output(source: str, target: str) -> str | None:
    """The file that writing `target` would replace, if there is one."""
    path = target % (first_number(source) if is_pattern(source) else 1) if is_pattern(target) else target
    return path if os.path.exists(path) else None


def may_overwrite(path: str, overwrite: bool | None) -> bool:
    """-y: yes; -n: no; neither: ask on a terminal, else no (a script must say which it wants)."""
    if overwrite is not None:
        return overwrite
    if not sys.stdin.isatty():
        return False
    answer = input(f"File '{path}' already exists. Overwrite? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def overwrite_refusal(path: str, overwrite: bool | None) -> str:
    if overwrite is False:
        return f"output '{path}' already exists; not overwritten (-n)"
    return f"output '{path}' already exists (-y overwrites it, -n skips it)"


def _restore_on(worker: int, url: Endpoint, args: argparse.Namespace, todo: queue.Queue,
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
                source, target, retry = todo.get_nowait()
            except queue.Empty:
                return
            try:
                settings = EncodeSettings(output_kind(target), args.codec, args.crf, args.preset, args.pix_fmt)
                # A retry keeps the segments the failed server finished (not with --compare, written in one go).
                job = Job(source, target, args.task, settings, mask=args.mask,
                          resume=args.resume or (retry and not args.compare),
                          segment_frames=args.segment_frames, max_in_flight=args.max_in_flight,
                          stall_timeout_s=args.timeout, compare=args.compare)
                result = run_job(job, client, url, task, lambda msg: report("warning", source, msg),
                                 progress=not args.quiet, bar_position=worker)
            except Interrupted:
                raise  # Ctrl-C: no further files either
            except (ServerError, InferenceServerException) as e:
                failures.append((source, target, url, str(e) if isinstance(e, ServerError) else f"server {url}: {e}"))
                continue
            except RestoreError as e:
                failures.append((source, target, None, str(e)))
                continue
            except (av.FFmpegError, OSError) as e:
                failures.append((source, target, None, f"{type(e).__name__}: {e}"))
                continue
            if not args.quiet:
                report("done", source, _summary(result))
    finally:
        client.close()


def _run_workers(urls: list[Endpoint], args: argparse.Namespace, todo: queue.Queue,
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


def _run_round(urls: list[Endpoint], items: list[tuple[str, str, bool]], args: argparse.Namespace,
               report: Callable[[str, str, str], None]) -> tuple[list, int]:
    """Restore `items` (source, target, resuming) over `urls`; the failures and the number of
    files no server could take."""
    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    failures: list[tuple[str, str, Endpoint | None, str]] = []
    server_problems: list[str] = []
    _run_workers(urls, args, todo, report, failures, server_problems)
    left = todo.qsize()
    for problem in server_problems:
        report("error" if left else "warning", "", problem)
    return failures, left


def _restore_with_retries(pairs: list[tuple[str, str]], args: argparse.Namespace,
                          report: Callable[[str, str, str], None]) -> tuple[list[tuple[str, str]], int]:
    """Restore `pairs` over all servers; a file that a server failed on is retried on each server
    it has not tried, one after another, resuming from its completed segments. Returns the final
    failures (source, message) and how many files no server could take."""
    failures, left = _run_round(args.endpoints, [(s, t, False) for s, t in pairs], args, report)
    final = []
    for source, target, url, message in failures:
        for other in [] if url is None else [u for u in args.endpoints if u != url]:
            report("warning", source, f"{message}; retrying on {other}")
            again, untaken = _run_round([other], [(source, target, True)], args, report)
            if not again and not untaken:
                message = None
                break
            url, message = (again[0][2], again[0][3]) if again else (other, f"{other} could not take it either")
            if url is None:  # not a server's fault this time: another server will not help
                break
        if message is not None:
            final.append((source, message))
    return final, left


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

    # Check every file before contacting a server or creating a folder: a bad input or output
    # fails at once, and alone (the other files still get restored).
    failures: list[tuple[str, str]] = []
    readable = []
    for source, target in pairs:
        try:
            Source(source).close()
        except RestoreError as e:
            failures.append((source, str(e)))
            continue
        readable.append((source, target))
    ready = []
    try:
        make_folders(readable, single=not many)
    except OSError as e:
        print(f"restore: error: cannot create the output folder ({e})", file=sys.stderr)
        return 1
    for source, target in readable:
        try:
            check_paths(source, target)
            for path in (existing_output(source, target), args.compare and existing_output(source, args.compare)):
                if path and not (args.resume and path == target) and not may_overwrite(path, args.overwrite):
                    raise RestoreError(overwrite_refusal(path, args.overwrite))
        except RestoreError as e:
            failures.append((source, str(e)))
            continue
        ready.append((source, target))
    retried, left = _restore_with_retries(ready, args, report) if ready else ([], 0)
    for source, message in failures + retried:
        report("error", source, message)
    if left and many:
        report("error", "", f"{left} file(s) not restored: no server could take them")
    return 1 if failures or retried or left else 0


if __name__ == "__main__":
    sys.exit(main())
