"""The schema a client's ``speech.context`` (and any informational body) is checked against, with
pydantic: a type-confused body is a MessageError naming the field, never an AttributeError. Unknown
keys pass (the SDKs add sections over time); known keys must have their type."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError


class MessageError(ValueError):
    """A client message whose body does not fit its schema; the reason names the field."""


class Lenient(BaseModel):
    """Unknown keys pass (the SDKs add sections over time); known keys must have their type."""

    model_config = ConfigDict(extra="allow")


Milliseconds = Annotated[int, Field(ge=0, le=3_600_000)]  # the SDK sends ints; digit strings pass too


class Enrichment(Lenient):
    profanity: StrictStr | None = None


class PhraseDetection(Lenient):
    mode: StrictStr | None = None
    language: StrictStr | None = None
    enrichment: Enrichment | None = None
    initialSilenceTimeout: Milliseconds | None = None
    trailingSilenceTimeout: Milliseconds | None = None


class Segmentation(Lenient):
    segmentationSilenceTimeoutMs: Milliseconds | None = None


class ModeSection(Lenient):
    segmentation: Segmentation | None = None


class DgiItem(Lenient):
    Text: StrictStr | None = None


class DgiGroup(Lenient):
    Items: list[DgiItem] | None = None


class Dgi(Lenient):
    Groups: list[DgiGroup] | None = None


class Action(Lenient):
    action: StrictStr | None = None


class TranslationSection(Lenient):
    targetLanguages: list[StrictStr] | None = None
    onPassthrough: Action | None = None


class LanguageId(Lenient):
    languages: list[StrictStr] | None = None
    mode: StrictStr | None = None
    expectedLanguage: StrictStr | None = None


class OldTranslationContext(Lenient):
    to: list[StrictStr] | None = None


class Synthesis(Lenient):
    defaultVoices: dict[str, StrictStr] | None = None


class AudioSection(Lenient):
    streams: dict[str, Any] | None = None


class DetailedOutput(Lenient):
    options: list[StrictStr] | None = None


class PhraseOutput(Lenient):
    format: StrictStr | None = None
    detailed: DetailedOutput | None = None


class Continuation(Lenient):
    previousServiceTag: StrictStr | None = None
    audio: dict[str, Any] | None = None


class ContextBody(Lenient):
    phraseDetection: PhraseDetection | None = None
    translation: TranslationSection | None = None
    translationcontext: OldTranslationContext | None = None
    synthesis: Synthesis | None = None
    audio: AudioSection | None = None
    phraseOutput: PhraseOutput | None = None
    continuation: Continuation | None = None
    languageId: LanguageId | None = None
    dgi: Dgi | None = None


def validated(model: type[BaseModel], body: Any, path: str):
    try:
        value = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        what = first["msg"].split(" or instance of")[0]  # not our private class names
        raise MessageError(f"{path}: {where}: {what}") from None
    return value
