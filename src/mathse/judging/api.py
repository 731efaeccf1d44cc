"""A client for OpenAI-compatible chat-completions endpoints (OpenAI, `vllm serve`, `mathse.generation.serve`).

Used by the `openai` teacher and the `openai` transport of the model ORM. What it guarantees:
- a bounded number of requests in flight, a timeout per request, retries with exponential backoff on
  429, 5xx, timeouts, dropped connections and malformed bodies; other 4xx fail at once;
- a content-addressed cache of responses on disk (key: sha256 of the model and the request body; never the
  API key), written as each response arrives, so a rerun or a resumed job never pays twice, and a failed
  run keeps what it already got;
- the API key is read from the environment variable named in config (stripped; one with a space or a
  newline inside is refused, unshown), sent only as a header, never over plain http to a host that is not
  loopback (unless `allow_insecure`), by default only to OpenAI's own endpoint, and scrubbed from every error
  that leaves a request, the HTTP library's own included;
- usage accounting (requests, retries, tokens, cache hits) for the round's cost artifact.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import mimetypes
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import requests

from mathse.artifacts import write_table, write_text_atomic
from mathse.config import EndpointConfig

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429} | set(range(500, 600))


class EndpointError(RuntimeError):
    """A request that failed for good (after retries, or at once on a client error)."""


class ApiKeyError(ValueError):
    """The API key cannot be used as configured; the message never holds the key."""


DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # read when api_key_env is null, and sent to OpenAI's endpoint only
OPENAI_HOST = "api.openai.com"


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(cfg: EndpointConfig) -> str | None:
    """The key to send to cfg.base_url, or None; ApiKeyError (never showing the key) when it must not be sent."""
    parts = urlsplit(cfg.base_url)
    host = (parts.hostname or "").lower()
    name = cfg.api_key_env
    if name is None:
        if host != OPENAI_HOST:
            return None  # $OPENAI_API_KEY goes to OpenAI only unless api_key_env names a variable
        name = DEFAULT_KEY_ENV
    raw = os.environ.get(name)
    key = raw.strip() if raw else None
    if not key:
        log.info("no API key in $%s: sending requests without an Authorization header", name)
        return None
    if any(c.isspace() or not c.isprintable() for c in key) or not key.isascii():
        raise ApiKeyError(
            f"${name} holds a space, a newline or another character that cannot be in an API key (the key is not "
            "shown); set the variable to the key alone"
        )
    if parts.scheme != "https" and not is_loopback(host) and not cfg.allow_insecure:
        raise ApiKeyError(
            f"refusing to send the API key in ${name} over plain {parts.scheme or 'http'} to {host or cfg.base_url!r}, "
            "which is not loopback: use an https base_url, or set allow_insecure: true for this endpoint"
        )
    return key


def public_url(url: str) -> str:
    """The URL without any user:password part, safe to log and record."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def image_data_url(path: str) -> str:
    mime = mimetypes.guess_type(path)[0] or "image/png"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def user_content(text: str, images: list[str]) -> list[dict]:
    """One user turn: the images (as data URLs) then the text, in OpenAI's content-part format."""
    parts: list[dict] = [{"type": "image_url", "image_url": {"url": image_data_url(p)}} for p in images]
    parts.append({"type": "text", "text": text})
    return parts


def cache_key(body: dict) -> str:
    # The body holds the model name; the URL and the key are left out so that the same request to the same
    # model is one entry wherever it is served from.
    blob = json.dumps({"model": body.get("model"), "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool


@dataclass
class Usage:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    completions: int = 0  # completions returned (fresh or cached)
    cache_hits: int = 0
    prompt_tokens: int = 0  # paid: fresh responses only
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # would have been paid without the cache
    cached_completion_tokens: int = 0
    failures: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, float]:
        with self.lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}


class ChatClient:
    """Chat completions with retries, a concurrency limit and an on-disk response cache."""

    def __init__(self, cfg: EndpointConfig, session: requests.Session | None = None) -> None:
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.public_url = public_url(self.url)
        self.cache_dir = Path(cfg.cache_dir)
        self.usage = Usage()
        self._key = read_api_key(cfg)
        self._local = threading.local()
        self._session = session

    # -- request bodies -------------------------------------------------------------------------------
    def body(self, text: str, images: list[str], *, seed: int | None = None, max_tokens: int | None = None) -> dict:
        body = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": user_content(text, images)}],
            "max_tokens": max_tokens or self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        }
        if seed is not None:
            body["seed"] = seed
        return body

    # -- cache ----------------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> dict | None:
        path = self._cache_path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            parse_completion(entry["response"])
            return entry
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            log.warning("unreadable cache entry %s: asking the endpoint again", path)
            return None

    def _cache_put(self, key: str, entry: dict) -> None:
        write_text_atomic(json.dumps(entry, sort_keys=True), self._cache_path(key))

    # -- HTTP -----------------------------------------------------------------------------------------
    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.usage.add(retries=1)
            self.usage.add(requests=1)
            retry_after = None
            try:
                resp = self._http().post(self.url, json=body, headers=headers, timeout=self.cfg.timeout_s)
            except requests.Timeout:
                last = f"no response within timeout_s={self.cfg.timeout_s:g}"
            except requests.ConnectionError as err:
                last = f"connection failed ({type(err).__name__})"
            except Exception as err:  # noqa: BLE001 - the HTTP library's own errors may quote the headers
                raise EndpointError(
                    self._scrub(f"{self.public_url}: request failed ({type(err).__name__}: {err})")
                ) from None
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                        parse_completion(data)
                        return data
                    except (ValueError, KeyError, TypeError, IndexError) as err:
                        last = f"HTTP 200 with a malformed body ({err}): {resp.text[:200]!r}"
                elif resp.status_code in RETRY_STATUS:
                    last = f"HTTP {resp.status_code}: {resp.text[:200]!r}"
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                else:
                    raise EndpointError(
                        self._scrub(f"{self.public_url}: HTTP {resp.status_code} (not retried): {resp.text[:500]!r}")
                    )
            if attempt < self.cfg.max_retries:
                delay = min(self.cfg.backoff_s * 2**attempt, self.cfg.max_backoff_s)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), self.cfg.max_backoff_s)
                log.warning("%s: %s; retry %d in %.1f s", self.public_url, self._scrub(last), attempt + 1, delay)
                time.sleep(delay)
        raise EndpointError(
            self._scrub(f"{self.public_url}: failed after {self.cfg.max_retries + 1} attempts; last: {last}")
        )

    # -- public ---------------------------------------------------------------------------------------
    def complete(self, body: dict) -> Completion:
        key = cache_key(body)
        entry = self._cache_get(key)
        if entry is not None:
            c = parse_completion(entry["response"])
            self.usage.add(
                completions=1,
                cache_hits=1,
                cached_prompt_tokens=c.prompt_tokens,
                cached_completion_tokens=c.completion_tokens,
            )
            return Completion(c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, cached=True)
        try:
            data = self._post(body)
        except EndpointError:
            self.usage.add(failures=1)
            raise
        self._cache_put(key, {"key": key, "model": body.get("model"), "response": data})
        c = parse_completion(data)
        self.usage.add(completions=1, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
        return c

    def complete_all(self, bodies: list[dict], desc: str = "requests") -> list[Completion]:
        """Every body's completion, in order, `max_concurrency` at a time.

        On a request that fails for good, requests not yet started are cancelled, those in flight finish
        (and are cached), and the error is raised: a rerun resumes from the cache.
        """
        t0 = time.perf_counter()
        results: list[Completion | None] = [None] * len(bodies)

        def run(i: int) -> None:
            results[i] = self.complete(bodies[i])

        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            futures = [pool.submit(run, i) for i in range(len(bodies))]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            wait(futures)
            error = next((f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()), None)
        self.usage.add(seconds=time.perf_counter() - t0)
        u = self.usage
        log.info(
            "%s: %d completions from %s (%s): %d cache hits, %d HTTP requests (%d retries), "
            "%d prompt + %d completion tokens paid",
            desc,
            sum(r is not None for r in results),
            self.public_url,
            self.cfg.model,
            u.cache_hits,
            u.requests,
            u.retries,
            u.prompt_tokens,
            u.completion_tokens,
        )
        if error is not None:
            n_done = sum(r is not None for r in results)
            log.error("%s: stopped after %d of %d completions (kept in %s)", desc, n_done, len(bodies), self.cache_dir)
            raise error
        return results  # type: ignore[return-value]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def parse_completion(data: dict) -> Completion:
    """The first choice's text and the usage of a chat-completions response (KeyError etc. if malformed)."""
    choice = data["choices"][0]
    content = choice["message"]["content"]
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise TypeError(f"message content is {type(content).__name__}, expected a string")
    usage = data.get("usage") or {}
    return Completion(
        content,
        choice.get("finish_reason"),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        cached=False,
    )


def cost_table(
    usage: Usage | None, *, round_idx: int, rule: str, backend: str, model: str, endpoint: str
) -> pl.DataFrame:
    """One row of the round's API cost artifact (zeros for backends that make no requests)."""
    counts = usage.as_dict() if usage is not None else Usage().as_dict()
    return pl.DataFrame(
        [{"round": round_idx, "rule": rule, "backend": backend, "model": model, "endpoint": endpoint, **counts}]
    )


def write_cost(
    usage: Usage | None, path: str, *, round_idx: int, rule: str, backend: str, model: str, endpoint: str
) -> pl.DataFrame:
    table = cost_table(usage, round_idx=round_idx, rule=rule, backend=backend, model=model, endpoint=endpoint)
    return write_table(table, path, "api_cost")
