"""What the LLM is asked for and how its answer is checked.

The answer is untrusted text. Decoding is constrained to `json_schema(n)` so it parses, then
`parse_scene` validates it with pydantic: exact subject count, non-empty distinct names,
caption lengths, no control characters, nothing that looks like markup or a chat control
token. It is never evaluated and never used as a path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datagen.config import PromptLimits

# Characters an answer may not contain: control characters (C0, DEL, C1), quote and backslash
# (they only appear in JSON escapes), angle and curly brackets (markup, chat tokens, templates).
_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\"\\\\<>{}"
_FORBIDDEN_RE = re.compile(f"[{_FORBIDDEN}]")
# Besides what the schema forbids: names are short labels, never paths or URLs.
_NAME_FORBIDDEN_RE = re.compile(r"[/\\:]|\.\.|^\.|https?")

SYSTEM_PROMPT = (
    "You write prompts for a text-to-image model. Describe one photograph with exactly the requested "
    "number of distinct, clearly separate subjects (objects, animals or people, each a single thing) "
    "against one background. Answer with JSON only: 'prompt' is one natural sentence describing the "
    "whole scene with every subject and the background; 'background' is a short caption of the "
    "background alone; 'subjects' lists each subject once with 'name' (one to three words, lowercase, "
    "distinct from the other names) and 'caption' (a short noun phrase that identifies it in the image, "
    "e.g. 'a red ceramic mug'). No subject may be part of another, and no two may be the same kind of thing."
)


def user_message(n: int, theme: str, background: str) -> str:
    return f"Theme: {theme}. Background: {background}. Number of subjects: {n}."


# xgrammar 0.2.8 failed to compile a regex repetition bound above 128 (0.2.9 does); longer
# texts are written as a run of bounded chunks, which matches the same strings on either.
_MAX_REPEAT = 128


def _text(lo: int, hi: int) -> dict:
    char = f"[^{_FORBIDDEN}]"
    first = min(hi, _MAX_REPEAT)
    parts = [f"{char}{{{min(lo, first)},{first}}}"]
    rest = hi - first
    while rest > 0:
        parts.append(f"{char}{{0,{min(rest, _MAX_REPEAT)}}}")
        rest -= _MAX_REPEAT
    return {"type": "string", "pattern": "^" + "".join(parts) + "$"}


def json_schema(n: int, limits: PromptLimits) -> dict:
    """The JSON schema of an answer with exactly n subjects, with every length bound."""
    subject = {
        "type": "object",
        "properties": {
            "name": _text(1, limits.name_max_chars),
            "caption": _text(limits.caption_min_chars, limits.caption_max_chars),
        },
        "required": ["name", "caption"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "prompt": _text(1, limits.prompt_max_chars),
            "background": _text(1, limits.background_max_chars),
            "subjects": {"type": "array", "items": subject, "minItems": n, "maxItems": n},
        },
        "required": ["prompt", "background", "subjects"],
        "additionalProperties": False,
    }


def clean_text(v: str) -> str:
    """Whitespace collapsed; refuses empty text and forbidden characters."""
    v = " ".join(v.split())
    if not v:
        raise ValueError("empty")
    if _FORBIDDEN_RE.search(v):
        raise ValueError("forbidden character")
    return v


class SubjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    caption: str

    @field_validator("name", "caption")
    @classmethod
    def _clean(cls, v: str) -> str:
        return clean_text(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if _NAME_FORBIDDEN_RE.search(v):
            raise ValueError("name looks like a path or URL")
        return v


class SceneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    background: str
    subjects: list[SubjectSpec] = Field(min_length=1)

    @field_validator("prompt", "background")
    @classmethod
    def _clean(cls, v: str) -> str:
        return clean_text(v)


@dataclass(frozen=True)
class Invalid:
    """Why an answer was refused: a short reason code (for stats) and a detail (for logs)."""

    reason: str
    detail: str


def parse_scene(text: str, n: int, limits: PromptLimits) -> SceneSpec | Invalid:
    """Parse and validate one LLM answer that must describe exactly n subjects."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        return Invalid("not_json", str(e)[:200])
    try:
        spec = SceneSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        reason = "forbidden_text" if ("forbidden" in msg or "path" in msg) else "bad_fields"
        return Invalid(reason, f"{where}: {msg}")
    if len(spec.subjects) != n:
        return Invalid("wrong_count", f"{len(spec.subjects)} subjects, asked for {n}")
    names = [s.name.casefold() for s in spec.subjects]
    if len(set(names)) != len(names):
        return Invalid("duplicate_names", ", ".join(sorted({x for x in names if names.count(x) > 1})))
    too_long = [
        (field, value)
        for field, value, cap in [("prompt", spec.prompt, limits.prompt_max_chars), ("background", spec.background, limits.background_max_chars)]
        + [("name", s.name, limits.name_max_chars) for s in spec.subjects]
        + [("caption", s.caption, limits.caption_max_chars) for s in spec.subjects]
        if len(value) > cap
    ]
    if too_long:
        return Invalid("too_long", too_long[0][0])
    short = [s.caption for s in spec.subjects if len(s.caption) < limits.caption_min_chars]
    if short:
        return Invalid("caption_too_short", short[0])
    return spec
