"""A small OpenAI-compatible server for a local Hugging Face VLM: `python -m mathse.generation.serve MODEL_DIR`.

It serves `POST /v1/chat/completions` (text and `image_url` data-URL parts, non-streaming), `GET /v1/models`
and `GET /health` with the standard library's HTTP server, so any backbone, ORM or trained round the
pipeline can load (`mathse.modeling`) can stand in for a teacher or judge endpoint without extra
dependencies: the tests run the `openai` teacher and ORM against the tiny model through it. Requests are
handled one generation at a time (a CPU or one GPU); for throughput use `vllm serve`.

It is meant for loopback, but holds against a hostile client all the same: a socket timeout on every
connection, a cap on connections at once (503 past it), on images per request and on decoded pixels, 400
(never 500 or a dropped connection) for any malformed request, and a constant-time API key comparison.

    python -m mathse.generation.serve results/model/tiny --weights results/round_2/adapter --port 8000
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import io
import json
import logging
import math
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from PIL import Image

from mathse.generation.hf_backend import derive_seed

log = logging.getLogger("mathse.generation.serve")
MAX_BODY_BYTES = 64 * 2**20
MAX_IMAGES = 8  # images in one request
MAX_PIXELS = 4096 * 4096  # decoded pixels of one image ...
MAX_TOTAL_PIXELS = 4 * MAX_PIXELS  # ... and of all a request's images
MAX_CONNECTIONS = 16  # connections served at once; more are answered 503 and closed
SOCKET_TIMEOUT_S = 60.0  # a client silent this long (a half-sent request) is disconnected


class BadRequest(ValueError):
    pass


def decode_image(url: str) -> Image.Image:
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise BadRequest("only data: URLs (base64) are served; this server fetches nothing")
    try:
        raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise BadRequest(f"image is {img.width}x{img.height} pixels, over the limit of {MAX_PIXELS}")
            return img.convert("RGB")
    except BadRequest:
        raise
    except (ValueError, OSError, binascii.Error, Image.DecompressionBombError) as err:
        raise BadRequest(f"cannot decode image: {err}") from None


def _number(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not lo <= value <= hi:
        raise BadRequest(f"'{name}' must be a number from {lo:g} to {hi:g}")
    return float(value)


def _integer(body: dict, name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"'{name}' must be an integer from {lo} to {hi}")
    return value


def parse_request(body: object) -> tuple[list[dict], list[Image.Image], dict]:
    """A chat-completions body -> (messages, images, sampling settings); BadRequest for anything malformed."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    messages, images = to_hf_messages(body.get("messages"))
    max_tokens = _integer(body, "max_completion_tokens", 1, 1 << 20) or _integer(body, "max_tokens", 1, 1 << 20)
    settings = {
        "max_tokens": max_tokens or 256,
        "temperature": _number(body, "temperature", 1.0, 0.0, 100.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0),
        "seed": _integer(body, "seed", -(1 << 63), (1 << 63) - 1) or 0,
        "model": body.get("model") if isinstance(body.get("model"), str) else None,
    }
    return messages, images, settings


def to_hf_messages(messages: list[dict]) -> tuple[list[dict], list[Image.Image]]:
    """OpenAI chat messages -> the processor's chat-template messages and the images in order."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    out, images = [], []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("each message needs a 'role'")
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
            continue
        if not isinstance(content, list):
            raise BadRequest("message content must be a string or a list of parts")
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind == "image_url":
                if len(images) >= MAX_IMAGES:
                    raise BadRequest(f"more than {MAX_IMAGES} images in one request")
                url = part.get("image_url")
                images.append(decode_image(url.get("url", "") if isinstance(url, dict) else url))
                if sum(img.width * img.height for img in images) > MAX_TOTAL_PIXELS:
                    raise BadRequest(f"the images hold more than {MAX_TOTAL_PIXELS} pixels in all")
                parts.append({"type": "image"})
            else:
                raise BadRequest(f"unsupported content part type {kind!r}")
        out.append({"role": m["role"], "content": parts})
    return out, images


class Generator:
    """Loads the model once; one generation at a time."""

    def __init__(self, model_path: str, weights: str | None, dtype: str, name: str) -> None:
        from mathse.modeling import load_model, load_processor

        self.processor = load_processor(model_path)
        self.model = load_model(model_path, weights, dtype, trainable=False)
        self.name = name
        self.lock = threading.Lock()
        cfg = self.model.config
        text_cfg = getattr(cfg, "text_config", cfg)
        self.max_positions = int(getattr(text_cfg, "max_position_embeddings", 0) or 0)

    @torch.inference_mode()
    def chat(self, body: dict) -> dict:
        messages, images, settings = parse_request(body)
        max_tokens, temperature = settings["max_tokens"], settings["temperature"]
        tok = self.processor.tokenizer
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(self.model.device)
        n_prompt = int(inputs["input_ids"].shape[1])
        if self.max_positions:
            if n_prompt >= self.max_positions:
                raise BadRequest(f"prompt is {n_prompt} tokens; the model's context is {self.max_positions}")
            max_tokens = min(max_tokens, self.max_positions - n_prompt)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        kwargs = dict(max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id or next(iter(eos_ids)))
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=settings["top_p"], top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self.lock:
            torch.manual_seed(derive_seed(settings["seed"], 11))
            out = self.model.generate(**inputs, **kwargs)
        new = out[0, n_prompt:].tolist()
        finish = "length"
        for pos, t in enumerate(new):
            if t in eos_ids:
                new, finish = new[: pos + 1], "stop"
                break
        content = tok.decode(new, skip_special_tokens=True).strip()
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": settings["model"] or self.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": len(new),
                "total_tokens": n_prompt + len(new),
            },
        }


def make_handler(gen: Generator, api_key: str | None):
    expected = f"Bearer {api_key}".encode() if api_key is not None else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler sets it on the connection's socket

        def log_message(self, fmt: str, *args) -> None:  # request lines only; never headers
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            elif self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": gen.name, "object": "model", "owned_by": "mathse"}]})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}", "not_found")
                return
            given = self.headers.get("Authorization", "").encode("latin-1", "replace")
            if expected is not None and not hmac.compare_digest(given, expected):
                self._error(401, "invalid or missing API key", "authentication_error")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0 or length > MAX_BODY_BYTES:
                self.close_connection = True  # the body, if any, is left unread
                self._error(400, "missing, malformed or oversized Content-Length", "invalid_request_error")
                return
            try:
                raw = self.rfile.read(length)
                if len(raw) < length:
                    self.close_connection = True
                    raise BadRequest("the body is shorter than its Content-Length")
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError) as err:  # bad JSON, bad UTF-8, absurd nesting
                    raise BadRequest(f"the body is not JSON: {err}") from None
                self._send(200, gen.chat(body))
            except BadRequest as err:
                self._error(400, str(err), "invalid_request_error")
            except Exception as err:  # noqa: BLE001 - a server answers 500 and keeps serving
                log.exception("generation failed")
                self._error(500, f"{type(err).__name__}: {err}", "server_error")

    return Handler


_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"


class CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: past that, 503 and close."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            payload = json.dumps({"error": {"message": "too many connections", "type": "server_busy", "code": 503}})
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY + f"Content-Length: {len(payload)}\r\n\r\n{payload}".encode())
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def finish_request(self, request, client_address) -> None:
        # The slot is freed when the handler is done, before ThreadingMixIn closes the connection: a client that
        # saw its connection closed and connects again finds it free (freed after the close, it could get a 503).
        try:
            super().finish_request(request, client_address)
        finally:
            self._slots.release()


def make_server(
    gen: Generator,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    max_connections: int = MAX_CONNECTIONS,
):
    return CappedServer((host, port), make_handler(gen, api_key), max_connections)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mathse.generation.serve", description=__doc__.splitlines()[0])
    p.add_argument("model", help="local Hugging Face folder of the base model")
    p.add_argument("--weights", default=None, help="a round's adapter/ folder (LoRA or full weights)")
    p.add_argument("--served-model-name", default=None, help="name reported by /v1/models (default: folder)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (printed on start)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--api-key-env", default=None, help="require 'Authorization: Bearer $VAR' (the key is read from VAR)"
    )
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, help="connections served at once")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    api_key = None
    if args.api_key_env:
        api_key = (os.environ.get(args.api_key_env) or "").strip()
        if not api_key:
            print(f"mathse.generation.serve: ${args.api_key_env} is empty", file=sys.stderr)
            return 2
    name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    gen = Generator(args.model, args.weights, args.dtype, name)
    server = make_server(gen, args.host, args.port, api_key, args.max_connections)
    host, port = server.server_address[:2]
    print(f"mathse.generation.serve: serving {name} on http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
