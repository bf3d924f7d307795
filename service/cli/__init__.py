"""``edge-infer``: classify images from the command line, list models, run the server.

    edge-infer predict PATH... [--model NAME] [--top-k K] [--output results.csv|results.jsonl]
    edge-infer predict PATH... --url https://host/stage [--api-key KEY] [--concurrency N]
    edge-infer predict PATH... --number   (read a number from each photo; with or without --url)
    edge-infer models [--model-dir DIR | --url URL]
    edge-infer serve [--host H] [--port P] [--model-dir DIR]

``predict`` runs in-process by default: the server's own registry, decoding, preprocessing
and batched ONNX Runtime calls, reading models from ``--model-dir`` / ``EDGE_MODEL_DIR`` (and
every other ``EDGE_*`` setting). With ``--url`` it sends the images to a running service.
Exit status: 0 every image classified, 1 some failed (or the model/server cannot serve),
2 usage errors (bad options, missing paths, no images, unknown model).

This package is imported only by the console script: the server never loads it, so nothing
here weighs on its cold start; heavy modules (ONNX Runtime, httpx, tqdm) load per command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.cli.local import LocalPredictor
    from service.cli.remote import RemotePredictor

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
DEFAULT_BATCH_SIZE = 32


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-infer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    source = argparse.ArgumentParser(add_help=False)
    source.add_argument(
        "--model-dir", type=Path, help="models to load in-process (default: EDGE_MODEL_DIR or models_onnx/)"
    )
    source.add_argument(
        "--url", help="a running edge-infer service, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/dev"
    )
    source.add_argument(
        "--api-key", default=os.environ.get("EDGE_API_KEY"), help="API key for --url (default: EDGE_API_KEY)"
    )
    source.add_argument("--api-key-header", default=os.environ.get("EDGE_API_KEY_HEADER", "X-API-Key"))
    source.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (--url)")

    predict = commands.add_parser("predict", parents=[source], help="classify image files, folders or globs")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or globs")
    predict.add_argument("--model", help="model name (default: EDGE_DEFAULT_MODEL, or mnist)")
    predict.add_argument("--top-k", type=_positive, default=3, help="classes per image in the JSONL output")
    predict.add_argument(
        "--output", type=Path, help="results.csv or results.jsonl (default: a table on stdout)"
    )
    predict.add_argument(
        "--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="images per model run / request"
    )
    predict.add_argument("--concurrency", type=_positive, default=4, help="requests in flight (--url)")
    predict.add_argument(
        "--retries", type=int, default=4, help="retries on 429/503 busy and connection errors (--url)"
    )
    predict.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    predict.add_argument(
        "--number", action="store_true", help="read a number (digits in one row) from each photo"
    )

    commands.add_parser("models", parents=[source], help="list the models (model dir or --url)")

    serve = commands.add_parser("serve", help="run the HTTP service with uvicorn")
    serve.add_argument("--host", default=os.environ.get("EDGE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("EDGE_PORT", "8000")))
    serve.add_argument("--model-dir", type=Path, help="default: EDGE_MODEL_DIR or models_onnx/")
    serve.add_argument("--root-path", default="", help="path prefix of a proxy in front (e.g. /dev)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from service.cli.files import UsageError
    from service.cli.outcome import ModelProblem

    try:
        if args.command == "predict":
            return _predict(args)
        if args.command == "models":
            return _models(args)
        return _serve(args)
    except UsageError as exc:
        print(f"edge-infer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelProblem as exc:
        print(f"edge-infer: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace):
    from service.config import Settings

    # The server's own reading of EDGE_* variables, with --model-dir in place of EDGE_MODEL_DIR.
    environ = dict(os.environ)
    if args.model_dir:
        environ["EDGE_MODEL_DIR"] = str(args.model_dir)
    return Settings.from_env(environ)


def _predict(args: argparse.Namespace) -> int:
    from service.cli.files import UsageError, find_images, true_labels
    from service.cli.output import OUTPUT_SUFFIXES, format_summary, summarize, write_file, write_table

    if args.output and args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--output must end in {' or '.join(OUTPUT_SUFFIXES)}: {args.output}")
    found = find_images(args.paths)
    if found.skipped:
        _report_skipped(found.skipped)
    if not found.images:
        raise UsageError("no image files among the paths given")

    predictor: LocalPredictor | RemotePredictor
    if args.url:
        from service.cli.remote import RemotePredictor

        remote = RemotePredictor
        if args.number:
            from service.cli.number import RemoteNumberReader as remote

        model = args.model or os.environ.get("EDGE_DEFAULT_MODEL", "mnist")
        predictor = remote(
            args.url, model, args.top_k, api_key=args.api_key, api_key_header=args.api_key_header,
            batch_size=args.batch_size, concurrency=args.concurrency, timeout=args.timeout,
            retries=max(0, args.retries),
        )  # fmt: skip
        mode = f"via {args.url}"
    else:
        from service.cli.local import LocalPredictor

        local = LocalPredictor
        if args.number:
            from service.cli.number import LocalNumberReader as local

        settings = _settings(args)
        predictor = local(settings, args.model or settings.default_model, args.top_k, args.batch_size)
        mode = f"in-process, {settings.model_dir}"

    progress = _progress(len(found.images), disabled=args.no_progress)
    start = time.perf_counter()
    try:
        outcomes = predictor.predict(found.images, progress.update)
    finally:
        progress.close()
        if hasattr(predictor, "close"):
            predictor.close()
    seconds = time.perf_counter() - start

    if args.output:
        write_file(outcomes, args.output)
    else:
        write_table(outcomes, sys.stdout)
    if args.number:
        from service.cli.number import number_truths

        truths = number_truths(found.images)
    else:
        truths = true_labels(found, predictor.labels)
    summary = summarize(outcomes, truths, seconds)
    print(format_summary(summary, predictor.name, mode), file=sys.stderr)
    if args.output:
        print(f"wrote {len(outcomes)} rows to {args.output}", file=sys.stderr)
    return EXIT_FAILURES if summary.failures else EXIT_OK


def _report_skipped(skipped: list[Path], shown: int = 20) -> None:
    print(f"skipped {len(skipped)} file(s) that are not images:", file=sys.stderr)
    for path in skipped[:shown]:
        print(f"  {path}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"  ... and {len(skipped) - shown} more", file=sys.stderr)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, disabled: bool):
    """A tqdm bar on stderr (images/s), or nothing when disabled or tqdm is not installed."""
    if disabled:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _models(args: argparse.Namespace) -> int:
    if args.url:
        import httpx

        headers = {args.api_key_header: args.api_key} if args.api_key else {}
        try:
            response = httpx.get(args.url.rstrip("/") + "/models", headers=headers, timeout=args.timeout)
        except httpx.TransportError as exc:
            print(f"edge-infer: cannot reach {args.url}: {exc}", file=sys.stderr)
            return EXIT_FAILURES
        if response.status_code != 200:
            print(
                f"edge-infer: GET /models answered {response.status_code}: {response.text[:300]}",
                file=sys.stderr,
            )
            return EXIT_FAILURES
        body = response.json()
        rows = [(m["name"], m["version"], m["num_classes"], m["for_real_predictions"], m["description"])
                for m in body["models"]]  # fmt: skip
        default, unavailable = body["default_model"], []
    else:
        from service.engine.registry import load_registry

        settings = _settings(args)
        registry = load_registry(settings.model_dir, settings.thread_plan().intra_op_threads)
        rows = [(m.name, m.manifest.version, len(m.manifest.labels), m.manifest.for_real_predictions,
                 m.manifest.description) for m in registry.ready.values()]  # fmt: skip
        default, unavailable = settings.default_model, list(registry.unavailable.values())
        print(f"models in {settings.model_dir}", file=sys.stderr)
    for name, version, classes, real, description in sorted(rows):
        marks = (" (default)" if name == default else "") + ("" if real else " [not for real predictions]")
        print(f"{name}  v{version}  {classes} classes{marks}  {description}")
    for u in unavailable:
        print(f"{u.name}  UNAVAILABLE: {u.reason}")
    return EXIT_OK if rows and not unavailable else EXIT_FAILURES


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print("edge-infer serve needs uvicorn: `uv sync --extra server`", file=sys.stderr)
        return EXIT_FAILURES
    if args.model_dir:
        os.environ["EDGE_MODEL_DIR"] = str(args.model_dir.resolve())
    print(
        f"page: http://{args.host}:{args.port}/  docs: http://{args.host}:{args.port}/docs", file=sys.stderr
    )
    uvicorn.run("service.app:app", host=args.host, port=args.port, root_path=args.root_path)
    return EXIT_OK
