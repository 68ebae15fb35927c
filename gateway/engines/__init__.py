"""Speech engines behind three small interfaces, so better engines can replace them per language.

- Recognizer: ``open_stream() -> RecognitionStream`` with ``feed(pcm) -> None``, ``hypothesis() -> str``
  and ``finish() -> str``.
- Translator: ``translate(text, target) -> str`` and ``targets`` (the installed languages).
- Synthesizer: ``synthesize(text, language) -> bytes`` (a complete WAV).
"""
