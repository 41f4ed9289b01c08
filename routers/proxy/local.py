"""Local models as proxy upstreams: a GGUF model on llama.cpp, or any local model on
transformers' continuous batching (`engine:` in the upstream's config; `auto` picks llama.cpp
for GGUF models when the `llamacpp` extra is installed, as `llm-eff eval` does).

llama.cpp (`LlamaCppUpstream`): llama.cpp's server (a child process, see
llm_eff.backends.llamacpp_server) and its own OpenAI-compatible API on a loopback port with a
random key, reached as any OpenAI-compatible upstream is, so its tokens
stream as they are decoded, `max_concurrency` parallel slots batch requests continuously, the
server caps each request's output (`max_output_tokens`) and a client that hangs up closes the
connection, which stops the slot's generation.

transformers (`LocalUpstream`):
Requests that arrive while others decode join the running batch at the next step, so a short
request is not stuck behind a long one; tokens stream to the client as they are generated.
Each request's output is capped (`max_output_tokens`, default 512), its time too
(`timeout_s`) and its prompt to PROMPT_TOKENS; the KV cache holds `max_concurrency` such
requests. A request whose client has gone is cancelled in the batch, so the model stops
generating for it. Decoding is greedy (the batch manager's generation config); `stop`
strings end a completion where they first appear.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR, Price, local_price
from llm_eff.core.types import Cost, Usage
from routers.proxy.billing import Delivered
from routers.proxy.config import UpstreamConfig
from routers.proxy.upstreams import OpenAIUpstream, Upstream, UpstreamError

DEFAULT_LOCAL_MAX_TOKENS = 512
PROMPT_TOKENS = 2048  # the longest prompt a local upstream accepts
PAGE_SIZE = 256


class HardwareTime:
    """How a local upstream bills: hardware time over the tokens/s a call achieved."""

    def _price(self) -> Price:
        return Price(0.0, 0.0, "local")

    def worst_cost(self, worst: Usage) -> float:
        """Hardware time is billed: at most the whole timeout's worth of it."""
        return DEFAULT_HARDWARE_DOLLARS_PER_HOUR * self.lease_s() / 3600  # type: ignore[attr-defined]

    def cost(self, usage: Usage) -> Cost:
        """Hardware time: $/hour over the tokens/s this call achieved (see llm_eff.core.prices)."""
        rate = usage.total_tokens / usage.latency_s if usage.latency_s else 0.0
        return local_price(DEFAULT_HARDWARE_DOLLARS_PER_HOUR, rate).cost(usage)


def make_local_upstream(config: UpstreamConfig, max_body_bytes: int) -> Upstream:
    """The upstream for a `kind: local` entry, on the engine its config chooses."""
    from llm_eff.backends import choose_engine
    from llm_eff.models import parse_model

    engine = choose_engine(parse_model(config.model), config.engine)
    if engine == "llamacpp":
        return LlamaCppUpstream(config, max_body_bytes)
    if engine != "transformers":
        raise UserError(f"local upstream '{config.name}': engine {engine} is not served locally")
    return LocalUpstream(config)


class LlamaCppUpstream(HardwareTime, OpenAIUpstream):
    """A GGUF model on llama.cpp's server (a child process), reached over loopback HTTP."""

    def __init__(self, config: UpstreamConfig, max_body_bytes: int = 16_000_000) -> None:
        from llm_eff.backends import gguf_file
        from llm_eff.backends.llamacpp_backend import LlamaCppBackend
        from llm_eff.models import parse_model

        ref = parse_model(config.model)
        gguf = gguf_file(ref)
        if gguf is None:
            raise UserError(f"local upstream '{config.name}': {config.model} is not a GGUF model")
        cap = config.max_output_tokens or DEFAULT_LOCAL_MAX_TOKENS
        self.engine = LlamaCppBackend(
            gguf,
            ref.name,
            batch_size=config.max_concurrency,
            context=cap + PROMPT_TOKENS,
            max_tokens=cap,
        )
        server = self.engine.server  # its OpenAI-compatible API on loopback
        super().__init__(config.model_copy(update={"base_url": server.base_url}), max_body_bytes)
        self.headers["Authorization"] = f"Bearer {server.api_key}"
        self.cap = cap

    def max_output(self) -> int | None:
        """The output cap the proxy sends when a request sets none (the server's own cap)."""
        return self.cap

    def busy(self) -> bool:
        """Whether any of the server's slots is decoding."""
        return self.engine.server.busy()

    async def aclose(self) -> None:
        """Close the connection pool, then stop the llama.cpp server process."""
        await super().aclose()
        await asyncio.to_thread(self.engine.server.close)


class LocalUpstream(HardwareTime, Upstream):
    """A local HF causal LM (e.g. smollm2-135m) answering in-process, continuously batched."""

    def __init__(self, config: UpstreamConfig, model: Any = None, tokenizer: Any = None) -> None:
        super().__init__(config)
        if model is None:
            from llm_eff.backends.transformers_backend import load_local
            from llm_eff.models import parse_model

            model, tokenizer = load_local(parse_model(config.model))
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        self.model, self.tokenizer = model.eval(), tokenizer
        eos = tokenizer.eos_token_id
        # the KV cache is sized for `max_concurrency` requests of the longest allowed context,
        # not (transformers' default) for most of the machine's free memory
        self.context = self.cap + PROMPT_TOKENS
        pages = -(-config.max_concurrency * self.context // PAGE_SIZE)
        self.manager = model.init_continuous_batching(
            generation_config=GenerationConfig(
                max_new_tokens=self.cap, do_sample=False, eos_token_id=eos, pad_token_id=eos
            ),
            continuous_batching_config=ContinuousBatchingConfig(
                page_size=PAGE_SIZE,
                num_blocks=pages + config.max_concurrency,
                max_batch_tokens=PAGE_SIZE * 2,
                max_requests_per_batch=config.max_concurrency,
            ),
        )
        self.manager.start()
        self._warm_up()

    @property
    def cap(self) -> int:
        """The most tokens one request may generate here."""
        return self.config.max_output_tokens or DEFAULT_LOCAL_MAX_TOKENS

    def max_output(self) -> int | None:
        """The output cap the proxy sends when a request sets none."""
        return self.cap

    def busy(self) -> bool:
        """Whether any request is waiting or being decoded."""
        processor = self.manager.batch_processor
        return bool(processor is not None and processor.has_pending_requests())

    def _warm_up(self) -> None:
        """One 1-token request at start: the batch manager's first step takes seconds."""
        rid = self.manager.add_request(self._encode([{"role": "user", "content": "hi"}]), None, 1)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            result = self.manager.get_result(rid, timeout=1)
            if result is not None and result.is_finished():
                return
            error = self.manager.background_thread_status.fatal_error
            if error is not None:
                raise UserError(f"local upstream '{self.name}' failed to start: {error}")
        raise UserError(f"local upstream '{self.name}': the model did not answer in 300 s")

    def _encode(self, messages: list[dict[str, Any]]) -> list[int]:
        chat = [
            {"role": str(m.get("role")), "content": _text(m.get("content"))}
            for m in messages
            if isinstance(m, dict)
        ]
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=True, return_dict=True
            )
            return list(encoded["input_ids"])
        prompt = "\n".join(m["content"] for m in chat)
        return list(self.tokenizer(prompt)["input_ids"])

    async def _tokens(self, body: dict[str, Any]) -> AsyncIterator[tuple[str, int, int, str]]:
        """(new text, prompt tokens, generated tokens, finish reason or "") as tokens arrive."""
        ids = self._encode(body.get("messages") or [])
        if len(ids) > PROMPT_TOKENS:
            raise UpstreamError(
                f"{self.name}: the prompt has {len(ids)} tokens, at most {PROMPT_TOKENS}",
                400,
                retryable=False,
            )
        asked = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
        limit = min([a for a in asked if isinstance(a, int)] + [self.cap])
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else [s for s in stops if isinstance(s, str)]
        queue: asyncio.Queue = asyncio.Queue()
        rid = f"proxy-{uuid.uuid4().hex}"
        self.manager.register_result_handler(rid, queue.put_nowait)  # before the first token
        self.manager.add_request(ids, request_id=rid, max_new_tokens=limit, streaming=True)
        deadline = time.monotonic() + self.config.timeout_s
        sent, finished = "", False
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:  # not wait_for: on Python 3.11 it can swallow a hang-up's cancellation
                    async with asyncio.timeout(max(remaining, 0.001)):
                        result = await queue.get()
                except TimeoutError:
                    raise UpstreamError(f"{self.name}: timed out", 504) from None
                if result.error:
                    raise UpstreamError(f"{self.name}: {result.error}", 502)
                tokens = result.generated_tokens
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                reason = ""
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    text, reason = text[:cut], "stop"
                elif result.is_finished():
                    reason = "length" if len(tokens) >= limit else "stop"
                if text.endswith("\ufffd") and not reason:
                    continue  # half a character: wait for the rest
                delta, sent = text[len(sent) :], text
                yield delta, len(ids), len(tokens), reason
                if reason:
                    finished = result.is_finished()
                    return
        finally:
            if not finished:  # the client left, a stop string, the timeout: stop decoding it
                self.manager.cancel_request(rid)
                with self.manager.output_router._lock:
                    self.manager.output_router.result_handlers.pop(rid, None)

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """Generate the whole completion."""
        start = time.perf_counter()
        parts, prompt, generated, reason = [], 0, 0, "stop"
        async for delta, prompt, generated, reason in self._tokens(body):  # noqa: B007
            parts.append(delta)
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=generated,
            latency_s=time.perf_counter() - start,
            model=self.config.model,
        )
        return _reply(self.config.model, "".join(parts), reason or "stop", usage), usage

    async def stream(self, body: dict[str, Any], out: Delivered) -> AsyncIterator[bytes]:
        """SSE chunks as tokens are generated, then usage, then [DONE]."""
        start = time.perf_counter()
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.config.model,
        }
        prompt = generated = 0
        async for delta, prompt, generated, reason in self._tokens(body):  # noqa: B007
            if delta:
                out.texts.append(delta)
            # the exact count so far: a client that hangs up is billed for what was generated
            out.usage = Usage(
                prompt_tokens=prompt,
                completion_tokens=generated,
                latency_s=time.perf_counter() - start,
                model=self.config.model,
            )
            choice = {"index": 0, "delta": {"content": delta}, "finish_reason": reason or None}
            yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
        counts = {
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
        }
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': counts})}\n\n".encode()
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        """Stop the batch manager's thread."""
        await asyncio.to_thread(self.manager.stop, block=True)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _reply(model: str, text: str, reason: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": reason,
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
