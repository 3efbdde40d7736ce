"""``ember serve MODEL_FILE``: an HTTP prediction server for a saved model.

    ember serve model.ember --port 8000
    curl -s localhost:8000/health
    curl -s -X POST localhost:8000/predict -d '{"instances": [[0.1, 0.2, ...], ...]}'
    -> {"predictions": [[...], ...]}           (TensorFlow Serving's REST body format)

Built on two well-kept WSGI libraries (the ``serve`` extra): ``waitress`` (a production,
multi-threaded pure-Python server) and ``werkzeug`` (request parsing). Loopback only unless
``--host`` says otherwise.

Requests are batched twice: each request's ``instances`` are predicted as one batch, and the
requests that arrive while the model is busy are merged into the next batch (up to
``max_batch_size`` rows), so throughput grows with concurrency. One worker thread runs the
model (ember's autograd and training flags are process-wide state, so the model is never run
from two threads at once); the HTTP threads only parse, validate and wait.

Every bad request gets a 4xx JSON body ``{"error": "..."}`` naming the problem: malformed JSON
(400), a body without a non-empty ``instances`` list (400), instances of the wrong shape or type
(400), a body over the size limit (413), a wrong method (405) or path (404). An unexpected
failure inside the model answers 500 with the exception's message; the server keeps running.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

import numpy as np

from ember.errors import EmberError

__all__ = ["ModelServer", "make_app", "create_server", "serve", "add_parser"]

log = logging.getLogger("ember.serving")


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------- batching
class _Job:
    __slots__ = ("x", "result", "error", "done")

    def __init__(self, x: np.ndarray):
        self.x = x
        self.result = None
        self.error = None
        self.done = threading.Event()


class ModelServer:
    """Validates instances against the model's input and predicts them in merged batches on
    one worker thread.

    Args:
        model: a built ember Model with one input.
        max_batch_size: most rows the model sees in one call (a larger request is split).
        batch_timeout: seconds the worker waits for more requests to merge into a batch
            (0: merge only those already waiting, no added latency).
        request_timeout: seconds a request waits for its predictions before a 503.
    """

    def __init__(
        self,
        model,
        max_batch_size: int = 256,
        batch_timeout: float = 0.0,
        request_timeout: float = 60.0,
    ):
        self.model = model
        self.max_batch_size = int(max_batch_size)
        self.batch_timeout = float(batch_timeout)
        self.request_timeout = float(request_timeout)
        self.input_shape, self.input_dtype = _input_signature(model)
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="ember-serve-model", daemon=True)
        self._worker.start()
        self.batches = 0  # model calls made (for /health and the tests)
        self.requests = 0

    # ------------------------------------------------------------------ validation
    def parse_instances(self, instances) -> np.ndarray:
        """The instances as one array of the model's input dtype, or a RequestError."""
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, '"instances" must be a non-empty list of model inputs')
        try:
            arr = np.asarray(instances)
        except ValueError:
            raise RequestError(
                400,
                "instances must all have the same shape: they form a ragged list "
                f"(the model expects each of shape {_fmt(self.input_shape)})",
            ) from None
        if arr.dtype.kind not in "biuf":
            raise RequestError(
                400,
                f"instances must hold numbers only, received values of type {arr.dtype.name} "
                f"(e.g. {_first_leaf(instances)!r})",
            )
        shape = arr.shape[1:]
        expected = self.input_shape
        fits = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, shape)
        )
        if not fits:
            raise RequestError(
                400,
                f"each instance must have shape {_fmt(expected)}, received instances of "
                f"shape {_fmt(shape)}",
            )
        dtype = np.dtype(self.input_dtype)
        if dtype.kind in "iu":
            if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
                raise RequestError(400, "this model takes integer ids: instances must be integers")
            return arr.astype(dtype)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RequestError(400, "instances must be finite numbers")
        return arr.astype(dtype)

    # ------------------------------------------------------------------ predicting
    def predict(self, x: np.ndarray):
        """Predictions for the rows of ``x`` (merged with other waiting requests)."""
        self.requests += 1
        job = _Job(x)
        self._queue.put(job)
        if not job.done.wait(self.request_timeout):
            raise RequestError(503, f"the model did not answer within {self.request_timeout}s")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, rows, stop = [job], len(job.x), False
            deadline = time.monotonic() + self.batch_timeout
            while rows < self.max_batch_size:
                try:
                    wait = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                rows += len(nxt.x)
            self._answer(jobs)
            if stop:
                return

    def _answer(self, jobs: list) -> None:
        try:
            outputs = self._call_model(np.concatenate([j.x for j in jobs]))
        except Exception as exc:  # noqa: BLE001 - reported to each request, never raised here
            if len(jobs) > 1:  # find the culprit: one bad request must not fail the others
                for j in jobs:
                    self._answer([j])
                return
            jobs[0].error = _model_error(exc)
            jobs[0].done.set()
            return
        start = 0
        for j in jobs:
            stop = start + len(j.x)
            j.result = [o[start:stop] for o in outputs] if isinstance(outputs, list) else (
                outputs[start:stop]
            )  # fmt: skip
            start = stop
            j.done.set()

    def _call_model(self, x: np.ndarray):
        self.batches += 1
        return self.model.predict(x, batch_size=self.max_batch_size, verbose=0)


def _model_error(exc: Exception) -> RequestError:
    if isinstance(exc, (EmberError, ValueError, TypeError)):
        return RequestError(400, f"the model rejected the instances: {exc}")
    log.exception("prediction failed", exc_info=exc)
    return RequestError(500, f"prediction failed: {type(exc).__name__}: {exc}")


def _input_signature(model) -> tuple:
    """(per-instance shape with None for free axes, dtype name) of a single-input model."""
    shape = getattr(model, "input_shape", None) or getattr(model, "_build_shape", None)
    if shape is None:
        raise EmberError(
            f"serve: model {model.name!r} is not built, so its input shape is unknown; build "
            f"it (or call it on a batch) before saving"
        )
    if isinstance(shape, list):
        raise EmberError(
            f"serve: model {model.name!r} takes {len(shape)} inputs; the REST body's "
            f'"instances" list serves single-input models only'
        )
    dtype = getattr(model, "_build_dtype", None)
    if dtype is None:
        from ember import backend

        dtype = backend.floatx()
    return tuple(shape[1:]), str(np.dtype(dtype))


def _fmt(shape) -> str:
    inner = ", ".join("None" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _first_leaf(value):
    while isinstance(value, list) and value:
        value = value[0]
    return value


def _jsonable(a):
    """Nested lists with NaN/Inf as null (JSON has no NaN)."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        obj = a.astype(object)
        obj[~np.isfinite(a)] = None
        return obj.tolist()
    return a.tolist()


# ---------------------------------------------------------------------------------- WSGI app
def make_app(model_server: ModelServer, max_body_bytes: int = 16 << 20):
    """The WSGI application: ``GET /health``, ``POST /predict`` (also TensorFlow Serving's
    ``POST /v1/models/<name>:predict``)."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.wrappers import Request, Response

    model = model_server.model

    def respond(status: int, body: dict) -> Response:
        data = json.dumps(body, allow_nan=False, separators=(",", ":"))
        return Response(data, status=status, mimetype="application/json")

    def health() -> Response:
        return respond(200, {
            "status": "ok",
            "model": model.name,
            "class": type(model).__name__,
            "input_shape": [None, *model_server.input_shape],
            "input_dtype": model_server.input_dtype,
            "max_batch_size": model_server.max_batch_size,
            "requests": model_server.requests,
            "batches": model_server.batches,
        })  # fmt: skip

    def predict(request: Request) -> Response:
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise RequestError(
                413, f"the body is {request.content_length} bytes; the limit is {max_body_bytes}"
            )
        raw = request.get_data(cache=False)  # raises 413 past max_content_length
        try:
            body = json.loads(raw)
        except UnicodeDecodeError:
            raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None
        if not isinstance(body, dict) or "instances" not in body:
            got = sorted(body)[:5] if isinstance(body, dict) else type(body).__name__
            raise RequestError(
                400, f'the body must be a JSON object {{"instances": [...]}}, received {got}'
            )
        x = model_server.parse_instances(body["instances"])
        outputs = model_server.predict(x)
        if isinstance(outputs, list):
            rows = [list(r) for r in zip(*(_jsonable(o) for o in outputs))]
        else:
            rows = _jsonable(outputs)
        return respond(200, {"predictions": rows})

    def dispatch(request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        routes = {"/health": ("GET", health), "/predict": ("POST", predict)}
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            path = "/predict"
        if path not in routes:
            raise RequestError(404, f"no such endpoint {request.path!r}: use GET /health or "
                                    f"POST /predict")  # fmt: skip
        method, handler = routes[path]
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            raise RequestError(405, f"{request.path} takes {method}, received {request.method}")
        return handler(request) if handler is predict else handler()

    def app(environ, start_response):
        request = Request(environ)
        request.max_content_length = max_body_bytes
        try:
            response = dispatch(request)
        except RequestError as exc:
            response = respond(exc.status, {"error": exc.message})
        except HTTPException as exc:  # werkzeug's own (413 from get_data, 400 bad encoding)
            response = respond(exc.code or 400, {"error": exc.description or exc.name})
        except Exception as exc:  # noqa: BLE001 - the server must answer, never crash
            log.exception("unexpected error")
            response = respond(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})
        return response(environ, start_response)

    return app


def create_server(
    model,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 8,
    max_batch_size: int = 256,
    batch_timeout: float = 0.0,
    max_body_bytes: int = 16 << 20,
):
    """A waitress server for ``model`` (a Model or a path to a saved one), not yet running:
    call ``.run()`` (blocks) and ``.close()``; ``.effective_port`` is the bound port (``port=0``
    picks a free one). The ModelServer is ``server.model_server``."""
    try:
        import waitress
    except ImportError:
        raise ImportError(
            "ember serve needs waitress and werkzeug: pip install 'ember[serve]'"
        ) from None
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from ember.models.saving import load_model

        model = load_model(model, compile=False)
    ms = ModelServer(model, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    app = make_app(ms, max_body_bytes=max_body_bytes)
    server = waitress.create_server(
        app, host=host, port=port, threads=threads,
        # waitress's own cap sits above ours, so that our JSON 413 is what clients see
        max_request_body_size=max_body_bytes + (1 << 20),
        clear_untrusted_proxy_headers=True, ident="ember",
    )  # fmt: skip
    server.model_server = ms
    return server


def serve(model, host: str = "127.0.0.1", port: int = 8000, **kwargs) -> None:
    """Serve ``model`` (a Model or a path) until interrupted."""
    server = create_server(model, host=host, port=port, **kwargs)
    ms = server.model_server
    # waitress warns whenever requests queue up; here queueing is how batches form
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    print(
        f"ember serve: {ms.model.name} ({type(ms.model).__name__}, input "
        f"{_fmt((None, *ms.input_shape))} {ms.input_dtype}) on "
        f"http://{host}:{server.effective_port}  (GET /health, POST /predict)",
        flush=True,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ember serve: warning: listening on {host}, reachable from other machines; "
              f"there is no authentication", flush=True)  # fmt: skip
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        ms.close()


# ---------------------------------------------------------------------------------- CLI
def _command(args) -> int:
    import os

    if not os.path.exists(args.model_file):
        print(f"ember serve: no such file: {args.model_file}")
        return 2
    try:
        serve(
            args.model_file, host=args.host, port=args.port, threads=args.threads,
            max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout_ms / 1000.0,
            max_body_bytes=int(args.max_body_mb * (1 << 20)),
        )  # fmt: skip
    except (EmberError, ImportError, OSError) as exc:
        print(f"ember serve: {exc}")
        return 1
    return 0


def add_parser(subparsers) -> None:
    """Register ``ember serve`` (its heavy imports happen when it runs)."""
    p = subparsers.add_parser(
        "serve", help="HTTP prediction server for a saved model (GET /health, POST /predict)"
    )
    p.add_argument("model_file", help="a model saved with model.save(path)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=8, help="HTTP worker threads")
    p.add_argument(
        "--max-batch-size", type=int, default=256,
        help="most rows per model call (requests are merged up to it)",
    )  # fmt: skip
    p.add_argument(
        "--batch-timeout-ms", type=float, default=0.0,
        help="wait this long for more requests to merge (0: no added latency)",
    )  # fmt: skip
    p.add_argument("--max-body-mb", type=float, default=16.0, help="request body size limit")
    p.set_defaults(func=_command)
