"""Speech engines behind three small interfaces, so better engines can replace them per language.

- Recognizer (``recognizers.Recognizers`` routes each source language to Whisper or pocketsphinx):
  ``open_stream(source)`` -> a stream with ``feed(pcm)``, ``hypothesis() -> str | None`` (None: no
  partial this time, e.g. the worker is busy) and ``finish() -> str`` ("" when the phrase was noise).
- Translator: ``translate(text, source, target) -> str`` and ``targets(source)`` (installed pairs).
- Synthesizer: ``synthesize(text, language) -> bytes`` (a complete WAV).
"""
