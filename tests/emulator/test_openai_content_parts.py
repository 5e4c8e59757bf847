"""The emulator's ``/v1`` chat reads content given as a list of parts, as Ollama's ``/v1`` does.

GuideLLM and the ``openai`` client with images send ``content`` as a list of parts; the text
parts are the message's text, the images become the message's ``images``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from pytest_llmperf.emulator.parts import PartsError, ollama_message

Client = httpx.AsyncClient
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a picture").decode()


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


async def chat(client: Client, *messages: dict[str, Any]) -> httpx.Response:
    body = {"model": "llama3.2:1b", "messages": list(messages), "seed": 3, "max_tokens": 8}
    return await client.post("/v1/chat/completions", json=body)


async def answer(client: Client, *messages: dict[str, Any]) -> dict[str, Any]:
    response = await chat(client, *messages)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_four_words_as_a_text_part_count_as_the_plain_string(asgi_client: Client) -> None:
    plain = await answer(asgi_client, {"role": "user", "content": "Why is sky blue"})
    parts = await answer(asgi_client, {"role": "user", "content": [text("Why is sky blue")]})
    assert plain["usage"]["prompt_tokens"] == 6  # "user", ":" and the four words
    assert parts["usage"] == plain["usage"]
    assert parts["choices"][0]["message"] == plain["choices"][0]["message"]


async def test_text_parts_are_joined_by_a_new_line(asgi_client: Client) -> None:
    joined = await answer(asgi_client, {"role": "user", "content": "Why is\nsky blue"})
    parts = await answer(
        asgi_client, {"role": "user", "content": [text("Why is"), text("sky blue")]}
    )
    assert parts["usage"] == joined["usage"]
    assert parts["choices"][0]["message"] == joined["choices"][0]["message"]


async def test_an_image_part_is_taken_and_not_read_as_text(asgi_client: Client) -> None:
    plain = await answer(asgi_client, {"role": "user", "content": "Describe it"})
    content = [text("Describe it"), image(f"data:image/png;base64,{PIXEL}")]
    with_image = await answer(asgi_client, {"role": "user", "content": content})
    assert with_image["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]


def test_image_parts_become_the_messages_images_in_ollamas_shape() -> None:
    message = {
        "role": "user",
        "content": [
            text("What is in these?"),
            image(f"data:image/png;base64,{PIXEL}"),
            {"type": "image_url", "image_url": f"data:image/jpeg;base64,{PIXEL}"},
        ],
    }
    assert ollama_message(message) == {
        "role": "user",
        "content": "What is in these?",
        "images": [PIXEL, PIXEL],
    }


def test_string_and_missing_content_pass_as_ollama_takes_them() -> None:
    assert ollama_message({"role": "user", "content": "hi"}) == {"role": "user", "content": "hi"}
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assistant = {"role": "assistant", "content": None, "tool_calls": calls}
    assert ollama_message(assistant) == {**assistant, "content": ""}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ([{"type": "input_audio", "input_audio": {}}], "invalid message format: a content part"),
        (["just a string"], "invalid message format: a content part"),
        ([{"type": "text"}], "invalid message format: a content part"),
        ({"type": "text", "text": "hi"}, "content must be a string or a list of parts, got dict"),
        ([image("https://example.invalid/cat.png")], "invalid image input: give an image as"),
        ([image("data:image/gif;base64,R0lG")], "invalid image input: give an image as"),
        ([image("data:image/png;base64,not base64!")], "the data: URL is not base64"),
    ],
    ids=["audio", "bare-string", "text-without-text", "dict", "remote-url", "gif", "bad-base64"],
)
async def test_content_it_cannot_read_is_a_400_in_openais_shape(
    asgi_client: Client, content: Any, says: str
) -> None:
    with pytest.raises(PartsError, match=says.replace("(", r"\(")):
        ollama_message({"role": "user", "content": content})
    response = await chat(asgi_client, {"role": "user", "content": content})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert says in error["message"]
