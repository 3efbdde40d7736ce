"""ember serve: TensorFlow Serving's REST body, 4xx JSON errors naming each problem, a model
failure answered without killing the server, and a concurrent load test on a real socket."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ember as em
from ember import layers

pytest.importorskip("werkzeug", reason="ember serve needs the 'serve' extra (werkzeug)")
pytest.importorskip("waitress", reason="ember serve needs the 'serve' extra (waitress)")

from werkzeug.test import Client  # noqa: E402

from ember.serving import ModelServer, _Job, create_server, make_app  # noqa: E402


@pytest.fixture(scope="module")
def model():
    em.set_seed(0)
    m = em.Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"),
                       layers.Dense(3, activation="softmax")])  # fmt: skip
    m.predict(np.zeros((1, 4), np.float32), verbose=0)
    return m


@pytest.fixture
def client(model):
    ms = ModelServer(model)
    yield Client(make_app(ms, max_body_bytes=4096))
    ms.close()


def post(client, body, path="/predict", raw=False):
    data = body if raw else json.dumps(body)
    r = client.post(path, data=data, content_type="application/json")
    return r.status_code, json.loads(r.get_data(as_text=True))


def test_predict_answers_tensorflow_serving_rest_body(client, model, rng):
    x = rng.normal(size=(5, 4)).astype(np.float32)
    status, body = post(client, {"instances": x.tolist()})
    assert status == 200 and set(body) == {"predictions"}
    np.testing.assert_allclose(body["predictions"], model.predict(x, verbose=0), rtol=1e-6)
    status, body = post(client, {"instances": x[:2].tolist()}, path="/v1/models/m:predict")
    assert status == 200 and len(body["predictions"]) == 2


def test_health_describes_the_model(client, model):
    r = client.get("/health")
    body = json.loads(r.get_data(as_text=True))
    assert r.status_code == 200 and body["status"] == "ok"
    assert body["model"] == model.name and body["input_shape"] == [None, 4]


@pytest.mark.parametrize(
    "raw,status,words",
    [
        ("{not json", 400, "malformed JSON"),
        (b"\xff\xfe{}", 400, "malformed JSON"),
        ("[1, 2]", 400, '{"instances": [...]}'),
        ('{"inputs": [[1, 2, 3, 4]]}', 400, "received ['inputs']"),
        ('{"instances": []}', 400, "non-empty list"),
        ('{"instances": [[1, 2, 3, 4], [1, 2]]}', 400, "same shape"),
        ('{"instances": [["a", "b", "c", "d"]]}', 400, "numbers only"),
        ('{"instances": [[1, 2, 3]]}', 400, "shape (4,), received instances of shape (3,)"),
        ('{"instances": [[[1, 2, 3, 4]]]}', 400, "received instances of shape (1, 4)"),
        ('{"instances": [[1, 2, NaN, 4]]}', 400, "finite"),
        ('{"instances": [' + ",".join(["[1, 2, 3, 4]"] * 400) + "]}", 413, "limit is 4096"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(client, raw, status, words):
    got, body = post(client, raw.encode() if isinstance(raw, str) else raw, raw=True)
    assert got == status, body
    assert words in body["error"], body


def test_wrong_method_and_path_are_4xx_json(client):
    r = client.get("/predict")
    assert r.status_code == 405 and "POST" in r.get_json()["error"]
    r = client.post("/nowhere", data="{}")
    assert r.status_code == 404 and "/health" in r.get_json()["error"]


class Fragile(em.Model):
    """Fails inside the model (not a validation error) when an instance starts with 99."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, x, training=None):
        if (np.asarray(x.data)[:, 0] == 99).any():
            raise RuntimeError("boom")
        return self.dense(x)


def test_a_failing_model_answers_500_and_the_server_keeps_going():
    model = Fragile()
    model(np.zeros((1, 3), np.float32))
    ms = ModelServer(model)
    client = Client(make_app(ms))
    status, body = post(client, {"instances": [[99, 0, 0]]})
    assert status == 500 and "boom" in body["error"]
    status, body = post(client, {"instances": [[1, 2, 3]]})
    assert status == 200 and len(body["predictions"]) == 1
    # merged into one batch with a failing request, good requests still get their answers
    good, bad = _Job(np.ones((2, 3), np.float32)), _Job(np.full((1, 3), 99, np.float32))
    ms._answer([good, bad])
    assert good.error is None and good.result.shape == (2, 2)
    assert bad.error is not None and bad.error.status == 500
    ms.close()


def test_integer_id_models_take_integer_instances():
    model = em.Sequential([layers.Input((5,), dtype="int64"), layers.Embedding(10, 4),
                           layers.GlobalAveragePooling1D(), layers.Dense(2)])  # fmt: skip
    ms = ModelServer(model)
    client = Client(make_app(ms))
    status, body = post(client, {"instances": [[1, 2, 3, 4, 5]]})
    assert status == 200, body
    np.testing.assert_allclose(
        body["predictions"], model.predict(np.array([[1, 2, 3, 4, 5]]), verbose=0), rtol=1e-6
    )
    status, body = post(client, {"instances": [[1.5, 2, 3, 4, 5]]})
    assert status == 400 and "integer" in body["error"]
    ms.close()


def request(port, method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_load_many_concurrent_requests_all_answered_correctly(model, tmp_path):
    path = tmp_path / "model.ember"
    model.save(path)
    server = create_server(path, host="127.0.0.1", port=0, threads=8)  # a free port
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        gen = np.random.default_rng(0)
        batches = [gen.normal(size=(int(gen.integers(1, 9)), 4)).astype(np.float32)
                   for _ in range(300)]  # fmt: skip
        expected = [model.predict(x, verbose=0) for x in batches]

        def one(i):
            return request(port, "POST", "/predict", {"instances": batches[i].tolist()})

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(one, range(len(batches)), timeout=120))
        for (status, body), want in zip(answers, expected):
            assert status == 200, body
            np.testing.assert_allclose(body["predictions"], want, rtol=1e-5, atol=1e-7)
        status, health = request(port, "GET", "/health")
        assert status == 200 and health["requests"] == len(batches)
        assert health["batches"] <= len(batches)
    finally:
        server.close()
        server.model_server.close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ember_serve_command_serves_a_saved_model(model, tmp_path):
    path = tmp_path / "model.ember"
    model.save(path)
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ember.cli", "serve", str(path), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = request(port, "GET", "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, proc.stdout.read() if proc.poll() is not None else "no answer"
        status, body = request(port, "POST", "/predict", {"instances": [[0.0, 1.0, 2.0, 3.0]]})
        assert status == 200 and len(body["predictions"][0]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_ember_serve_reports_a_missing_file(tmp_path):
    from ember.cli import main

    assert main(["serve", str(tmp_path / "nope.ember")]) == 2
