"""GET /v1/models and POST /v1/chat/completions with the real engines
(SmolLM2 on llama-server), through the official `openai` SDK."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def test_models_list_every_engine(client):
    listed = client.models.list()
    entries = {m.model_extra["service"]: m for m in listed.data}
    assert set(entries) == {"tts", "stt", "chat"}, listed
    plugins = {"tts": "tts-piper", "stt": "stt-whisper", "chat": "chat-http"}
    for service, m in entries.items():
        assert m.object == "model"
        assert m.id and isinstance(m.id, str)
        assert m.owned_by == plugins[service]
        assert m.created > 1_600_000_000, m
        assert m.model_extra["ready"] is True, m
        assert m.model_extra["status"] == "ready", m
    assert entries["tts"].id == "en_US-joe-medium"
    assert entries["chat"].id == "smollm2"


def test_chat(client, models):
    reply = client.chat.completions.create(model=models["chat"], messages=MESSAGES, max_tokens=40)
    assert reply.object == "chat.completion"
    assert reply.model == models["chat"]
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip(), reply
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1


def test_chat_streamed(client, models):
    stream = client.chat.completions.create(model=models["chat"], messages=MESSAGES, max_tokens=40, stream=True)
    chunks = list(stream)  # ends: the SDK stops at `data: [DONE]`
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" and c.model == models["chat"] for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content.strip(), chunks
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"]), finishes
    assert chunks[-1].choices[0].finish_reason is not None


def test_chat_with_parts_and_a_system_message(client, models):
    reply = client.chat.completions.create(
        model=models["chat"],
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
        ],
        max_tokens=20,
    )
    assert reply.choices[0].message.content.strip()


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_limits_the_reply(client, models, stream):
    request = dict(
        model=models["chat"],
        messages=[{"role": "user", "content": "Tell me a long story about a dragon and a knight."}],
        max_tokens=5,
    )
    if stream:
        chunks = list(client.chat.completions.create(**request, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
        assert finish == ["length"], finish
        pieces = sum(1 for c in chunks if c.choices[0].delta.content)
        assert 1 <= pieces <= 5, chunks
    else:
        reply = client.chat.completions.create(**request)
        content = reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "length", reply
        assert 1 <= reply.usage.completion_tokens <= 5, reply.usage
    assert content.strip()
    assert len(content.split()) <= 5, content


def test_max_completion_tokens(client, models):
    reply = client.chat.completions.create(
        model=models["chat"],
        messages=[{"role": "user", "content": "Tell me a long story about a dragon and a knight."}],
        max_completion_tokens=3,
    )
    assert reply.choices[0].finish_reason == "length", reply
    assert reply.usage.completion_tokens <= 3


@pytest.mark.parametrize("stream", [False, True])
def test_stop(client, models, stream):
    # Greedy decoding is deterministic: take the reply without `stop`, pick
    # a word from its middle, and ask again stopping there.
    request = dict(
        model=models["chat"],
        messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
        temperature=0,
        max_tokens=60,
    )
    full = client.chat.completions.create(**request).choices[0].message.content
    words = full.split()
    assert len(words) >= 6, full
    stop = words[len(words) // 2]
    before = full[: full.index(stop)]
    if stream:
        chunks = list(client.chat.completions.create(**request, stop=[stop], stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    else:
        reply = client.chat.completions.create(**request, stop=[stop, "never said"])
        content = reply.choices[0].message.content
        finish = [reply.choices[0].finish_reason]
    assert finish == ["stop"], finish
    assert stop not in content, (stop, content)
    assert content.strip() == before.strip(), (stop, full, content)


def test_unknown_chat_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    body = caught.value.response.json()
    assert body["error"]["code"] == "model_not_found", body
    assert "smollm2" in body["error"]["message"]


def test_bad_chat_requests_are_400(client, models):
    for request in (
        dict(messages=[]),
        dict(messages=[{"role": "tool", "content": "x"}]),
        dict(messages=MESSAGES, n=2),
        dict(messages=MESSAGES, temperature=3),
        dict(messages=MESSAGES, stop=["a", "b", "c", "d", "e"]),
        dict(messages=MESSAGES, max_tokens=0),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=models["chat"], **request)
        assert caught.value.response.json()["error"]["type"] == "invalid_request_error", request
