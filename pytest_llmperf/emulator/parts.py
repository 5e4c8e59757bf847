"""OpenAI chat messages in Ollama's shape: content given as a list of parts.

OpenAI clients (GuideLLM, the ``openai`` package with images) send
``"content": [{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": ...}}]``.
As vLLM and Ollama's ``/v1`` read it, the text parts are the message's text (joined by a new
line, as vLLM joins them) and each image, a base64 ``data:`` URL, is one of the message's
``images`` (base64, as Ollama's ``/api/chat`` takes them). Ollama's own error texts start the
messages of what is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

IMAGE_TYPES = ("jpeg", "jpg", "png", "webp")  # the data: URLs Ollama's /v1 accepts


class PartsError(ValueError):
    """Content that is neither a string nor a list of text and image parts."""


def ollama_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` with its content as text, and its image parts as ``images``."""
    content = message.get("content")
    if isinstance(content, str):
        return dict(message)
    if content is None:  # an assistant message that only calls tools
        return {**message, "content": ""}
    if not isinstance(content, list):
        raise PartsError(
            f"invalid message format: content must be a string or a list of parts, "
            f"got {type(content).__name__}"
        )
    texts: list[str] = []
    images = list(message.get("images") or [])
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image(part.get("image_url")))
        else:
            raise PartsError(
                f"invalid message format: a content part must be "
                f'{{"type": "text", "text": ...}} or {{"type": "image_url", ...}}, got {part!r}'
            )
    converted = {**message, "content": "\n".join(texts)}
    if images:
        converted["images"] = images
    return converted


def _image(value: Any) -> str:
    """The base64 data of an ``image_url`` part (``{"url": ...}`` or the URL itself)."""
    url = value.get("url") if isinstance(value, Mapping) else value
    if isinstance(url, str):
        for kind in IMAGE_TYPES:
            prefix = f"data:image/{kind};base64,"
            if url.startswith(prefix):
                data = url[len(prefix) :]
                try:
                    base64.b64decode(data, validate=True)
                except binascii.Error:
                    raise PartsError("invalid image input: the data: URL is not base64") from None
                return data
    shown = url if not isinstance(url, str) or len(url) <= 60 else url[:57] + "..."
    raise PartsError(
        f"invalid image input: give an image as a data:image/png;base64,... URL "
        f"({', '.join(IMAGE_TYPES)}), got {shown!r}"
    )
