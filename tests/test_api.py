"""The OpenAI-compatible client against a local server that misbehaves: 429, 500, hangs, malformed bodies."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mathse.artifacts import read_table
from mathse.config import EndpointConfig, ExtractorConfig, TeacherConfig
from mathse.judging.api import ChatClient, EndpointError, cache_key, public_url
from mathse.judging.extractor import LlmExtractor
from mathse.judging.scoring import score_table
from mathse.judging.teacher import distill

KEY_ENV = "MATHSE_FAULT_TEST_KEY"


def completion(text: str) -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class FaultServer:
    """Answers request n with script[n] (then `default`): ok, 429, 500, 401, hang, garbage, nochoices, echo, or
    say:TEXT (a completion whose text is TEXT)."""

    def __init__(self, script: list[str], default: str = "ok", hang_s: float = 1.5, gather: int = 1) -> None:
        self.script, self.default, self.hang_s = list(script), default, hang_s
        # "echo": requests are held in groups of `gather` (until the group's last one has come, then a moment
        # more, for any beyond a client's limit to arrive), then each echoes its question.
        self.gather, self.in_flight, self.max_in_flight = gather, 0, 0
        self.seen: list[dict] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def reply(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n = len(outer.seen)
                    outer.seen.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                    action = outer.script[n] if n < len(outer.script) else outer.default
                if action == "ok":
                    text = "Step 1: 3 + 5 = 8.\nThe answer to this problem is 8."
                    self.reply(200, json.dumps(completion(text)).encode())
                elif action in ("429", "500", "401"):
                    headers = {"Retry-After": "0"} if action == "429" else {}
                    self.reply(int(action), b'{"error": {"message": "scripted"}}', headers)
                elif action == "hang":  # past the client's timeout, bounded so teardown never waits long
                    outer.stop.wait(outer.hang_s)
                    self.reply(200, json.dumps(completion("late")).encode())
                elif action == "garbage":
                    self.reply(200, b"<html>upstream proxy error</html>")
                elif action == "nochoices":
                    self.reply(200, b'{"object": "chat.completion", "choices": []}')
                elif action.startswith("say:"):
                    self.reply(200, json.dumps(completion(action.removeprefix("say:"))).encode())
                elif action == "echo":
                    group_end = (n // outer.gather + 1) * outer.gather
                    with outer.arrived:
                        outer.in_flight += 1
                        outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                        outer.arrived.notify_all()
                        outer.arrived.wait_for(lambda: len(outer.seen) >= group_end, timeout=10)
                    outer.stop.wait(0.1)
                    with outer.lock:  # before the reply, so that the client's next request never overlaps it
                        outer.in_flight -= 1
                    question = body["messages"][0]["content"][-1]["text"]
                    self.reply(200, json.dumps(completion(f"{question}: The answer to this problem is 8.")).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def endpoint(server: FaultServer, tmp_path, **kw) -> EndpointConfig:
    defaults = dict(
        base_url=server.base_url,
        model="fault-model",
        api_key_env=KEY_ENV,
        timeout_s=0.5,
        max_retries=5,
        backoff_s=0.01,
        max_backoff_s=0.05,
        max_concurrency=1,
        cache_dir=str(tmp_path / "cache"),
    )
    return EndpointConfig(**{**defaults, **kw})


def test_retries_through_429_500_timeout_and_malformed_bodies(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test")
    with FaultServer(["429", "500", "hang", "garbage", "nochoices", "ok"]) as server:
        client = ChatClient(endpoint(server, tmp_path))
        [c] = client.complete_all([client.body("q", [])])
    assert c.text.endswith("The answer to this problem is 8.") and not c.cached
    assert (client.usage.requests, client.usage.retries, client.usage.failures) == (6, 5, 0)
    assert (client.usage.prompt_tokens, client.usage.completion_tokens) == (7, 3)
    assert server.auth == ["Bearer sk-test"] * 6


def test_persistent_5xx_fails_naming_the_endpoint_and_status(tmp_path):
    with FaultServer([], default="500") as server:
        client = ChatClient(endpoint(server, tmp_path, max_retries=2))
        with pytest.raises(EndpointError) as err:
            client.complete_all([client.body("q", [])])
    msg = str(err.value)
    assert f"{server.base_url}/chat/completions" in msg and "HTTP 500" in msg and "3 attempts" in msg
    assert len(server.seen) == 3 and client.usage.failures == 1


def test_timeouts_fail_with_a_clear_message(tmp_path):
    with FaultServer([], default="hang", hang_s=1.0) as server:
        client = ChatClient(endpoint(server, tmp_path, max_retries=1, timeout_s=0.2))
        t0 = time.monotonic()
        with pytest.raises(EndpointError, match=r"no response within timeout_s=0.2"):
            client.complete_all([client.body("q", [])])
    assert time.monotonic() - t0 < 5


def test_client_errors_are_not_retried(tmp_path):
    with FaultServer([], default="401") as server:
        client = ChatClient(endpoint(server, tmp_path))
        with pytest.raises(EndpointError, match=r"HTTP 401 \(not retried\)"):
            client.complete_all([client.body("q", [])])
    assert len(server.seen) == 1


def test_a_failed_run_keeps_what_it_got_and_the_rerun_pays_only_for_the_rest(tmp_path):
    bodies = lambda c: [c.body(f"question {i}", [], seed=i) for i in range(4)]  # noqa: E731
    with FaultServer(["ok", "ok"], default="500") as server:
        client = ChatClient(endpoint(server, tmp_path, max_retries=1))
        with pytest.raises(EndpointError):
            client.complete_all(bodies(client))
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2
    with FaultServer([]) as healed:
        client = ChatClient(endpoint(healed, tmp_path))
        out = client.complete_all(bodies(client))
    assert [c.cached for c in out] == [True, True, False, False]
    assert (client.usage.cache_hits, client.usage.requests) == (2, 2)
    assert [b["messages"][0]["content"][-1]["text"] for b in healed.seen] == ["question 2", "question 3"]


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_limit_and_order(tmp_path, limit):
    """`limit` requests in flight at once, never more (the server holds each until `limit` are in), and the
    completions come back in the order of the bodies, whatever order the server answers them in."""
    with FaultServer([], default="echo", gather=limit) as server:
        client = ChatClient(endpoint(server, tmp_path, max_concurrency=limit, timeout_s=15))
        out = client.complete_all([client.body(f"q{i}", [], seed=i) for i in range(3 * limit)])
    assert server.max_in_flight == limit
    assert [c.text.split(":")[0] for c in out] == [f"q{i}" for i in range(3 * limit)]
    assert client.usage.requests == 3 * limit and client.usage.retries == 0


def test_cache_key_is_the_model_and_body_only():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.0}
    assert cache_key(body) == cache_key(json.loads(json.dumps(body)))
    assert cache_key(body) != cache_key({**body, "model": "other"})
    assert cache_key(body) != cache_key({**body, "max_tokens": 6})


def test_public_url_drops_credentials():
    assert public_url("https://user:secret@api.example.com:8443/v1/chat/completions?key=x") == (
        "https://api.example.com:8443/v1/chat/completions"
    )


def test_distill_rule_finishes_through_retries_and_records_cost(data_dir, tmp_path):
    with FaultServer(["429", "500", "garbage"]) as server:
        cfg = TeacherConfig(backend="openai", openai=endpoint(server, tmp_path, max_concurrency=2))
        out = distill(str(data_dir / "seed.parquet"), str(tmp_path / "d.parquet"), cfg, 0, str(tmp_path / "c.parquet"))
    seed = read_table(data_dir / "seed.parquet", "problem")
    assert out.height == seed.height and set(out["model"]) == {"fault-model"} and set(out["backend"]) == {"openai"}
    cost = read_table(tmp_path / "c.parquet", "api_cost").row(0, named=True)
    assert cost["requests"] == seed.height + 3 and cost["retries"] == 3 and cost["completions"] == seed.height
    assert cost["endpoint"] == f"{server.base_url}/chat/completions" and cost["rule"] == "distill"
    # Images travel as data URLs.
    assert server.seen[0]["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_distill_rule_fails_clearly_and_writes_no_table(data_dir, tmp_path):
    with FaultServer(["ok", "ok", "ok"], default="500") as server:
        cfg = TeacherConfig(backend="openai", openai=endpoint(server, tmp_path, max_retries=1))
        with pytest.raises(EndpointError, match=r"HTTP 500"):
            distill(str(data_dir / "seed.parquet"), str(tmp_path / "d.parquet"), cfg, 0)
    assert not (tmp_path / "d.parquet").exists()
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3


def test_a_corrupt_cache_entry_is_asked_again(tmp_path):
    with FaultServer([]) as server:
        client = ChatClient(endpoint(server, tmp_path))
        body = client.body("q", [])
        client.complete(body)
        entry = next((tmp_path / "cache").rglob("*.json"))
        entry.write_text('{"response": {"choices": []}}')
        assert not client.complete(body).cached
    assert len(server.seen) == 2


def test_reflect_sends_the_wrong_path_the_orm_feedback_and_the_image(data_dir, tmp_path):
    from test_serve import wrong_paths

    from mathse.config import ReflectionConfig
    from mathse.judging.teacher import reflect

    wrong_paths(data_dir, tmp_path / "j.parquet", n=2)
    judged = read_table(tmp_path / "j.parquet", "judgment")
    with FaultServer([]) as server:
        cfg = TeacherConfig(backend="openai", openai=endpoint(server, tmp_path))
        out = reflect(
            [str(tmp_path / "j.parquet")],
            [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")],
            str(tmp_path / "r.parquet"),
            cfg,
            ReflectionConfig(),
            round_idx=1,
            seed=0,
        )
    assert out.height == 2 and set(out["model"]) == {"fault-model"}
    for body, j in zip(server.seen, judged.iter_rows(named=True), strict=True):
        image, text = body["messages"][0]["content"]
        assert image["image_url"]["url"].startswith("data:image/png;base64,")
        assert j["response"] in text["text"] and j["error_analysis"] in text["text"]
        assert f"step {j['error_step']}" in text["text"] and "may be questionable" in text["text"]


def test_answer_extractor_takes_the_replys_first_line_and_no_answer_for_none(data_dir, tmp_path, monkeypatch):
    """Asked only where the rules find no answer, in order; the reply's first line is the answer, NONE is none."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    problems = read_table(data_dir / "bench/synthetic.parquet", "problem").head(3)
    answer, last = problems["answer"][0], problems["answer"][2]
    responses = ["I added the bars up in my head.", "No idea.", f"The answer to this problem is {last}."]
    with FaultServer([f"say:{answer}\nbecause the bars add up", "say:NONE."]) as server:
        extractor = LlmExtractor(ExtractorConfig(backend="openai", openai=endpoint(server, tmp_path)))
        scores = score_table(problems, responses, "mathse", extractor)
    assert [responses[i] in json.dumps(body) for i, body in zip((0, 1), server.seen, strict=True)] == [True, True]
    assert scores["rule"].to_list() == ["llm_extractor", "none", "answer_prefix"]
    assert scores["extractor"].to_list() == ["fault-model@v1", None, None]
    assert scores["extracted"].to_list() == [answer, None, last]
    assert scores["correct"].to_list() == [True, False, True]
