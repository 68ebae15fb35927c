"""Apertium machine translation, kept warm.

``apertium eng-spa`` spawns a 10-process pipeline per call (~0.2 s). Instead each installed mode's
pipeline is started once in null-flush mode (``-z``): a NUL after the input makes every stage
flush, and the translation comes back terminated by a NUL — tens of milliseconds per sentence.
Some stages (``lt-proc -b``) only act on a NUL once they have read one more byte, and the tagger
swallows a lone extra NUL, so every request ends with three NULs; the empty results are skipped.
The text itself ends with a newline: without a blank after it, a sentence's final punctuation stays
inside ``lt-proc`` and the translation loses its "." (the ``apertium`` command's deformatter adds one).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import threading
from pathlib import Path

MODES_DIR = Path("/usr/share/apertium/modes")
ISO639_3_TO_1 = {"eng": "en", "spa": "es", "cat": "ca", "fra": "fr", "deu": "de", "ita": "it", "por": "pt", "glg": "gl",
                 "epo": "eo", "oci": "oc", "eus": "eu", "nld": "nl"}
ZFLAG_PROGRAMS = ("lt-proc", "apertium-tagger", "apertium-pretransfer", "apertium-transfer", "lrx-proc",
                  "apertium-interchunk", "apertium-postchunk", "cg-proc", "apertium-anaphora", "lsx-proc")
TRANSLATE_TIMEOUT_S = 10.0
FLUSH = b"\0\0\0"


class TranslationError(RuntimeError):
    pass


def installed_pairs(modes_dir: Path = MODES_DIR) -> dict[tuple[str, str], Path]:
    """(source, target) in ISO 639-1 -> mode file, for every installed base mode such as ``spa-eng``
    (variants such as ``eng-cat_valencia`` and debug modes are left out)."""
    pairs = {}
    for mode in sorted(modes_dir.glob("*-*.mode")):
        codes = mode.stem.split("-")
        if len(codes) == 2 and all(code in ISO639_3_TO_1 for code in codes):
            pairs[(ISO639_3_TO_1[codes[0]], ISO639_3_TO_1[codes[1]])] = mode
    return pairs


class ApertiumPipeline:
    """One resident pipeline for one mode; ``translate`` is serialised by a lock."""

    def __init__(self, mode_file: Path):
        # $1 = -n: generation without the "*unknown word" marks; $2: no extra tagger options.
        command = mode_file.read_text().strip().replace("$1", "-n").replace("$2", "")
        self.command = re.sub(r"(^|\|\s*)(" + "|".join(map(re.escape, ZFLAG_PROGRAMS)) + r")\b", r"\1\2 -z", command)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, bufsize=0)

    def translate(self, text: str) -> str:
        text = " ".join(text.split())
        if not text:
            return ""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None and stdout is not None  # _start opens both as pipes
            try:
                stdin.write(_escape(text).encode() + b"\n" + FLUSH)
                stdin.flush()
                raw = _read_until_nul(stdout.fileno()).decode(errors="replace")
                return " ".join(re.sub(r"\\(.)", r"\1", raw).split())
            except (OSError, TranslationError) as exc:
                self._process.kill()
                self._process = None
                raise TranslationError(f"apertium pipeline failed: {exc}") from None

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _escape(text: str) -> str:
    return re.sub(r"([\^\$\[\]\\/@<>{}*#+~])", r"\\\1", text.replace("\0", ""))


def _read_until_nul(fd: int) -> bytes:
    data = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], TRANSLATE_TIMEOUT_S)
        if not ready:
            raise TranslationError(f"no answer within {TRANSLATE_TIMEOUT_S:.0f} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise TranslationError("pipeline exited")
        data += chunk
        body = data.lstrip(b"\0")
        if b"\0" in body:
            return bytes(body[: body.index(b"\0")])


class ApertiumTranslator:
    """Every installed Apertium pair, each through its own warm pipeline, started on first use."""

    def __init__(self, modes_dir: Path = MODES_DIR):
        if shutil.which("lt-proc") is None:
            raise TranslationError("Apertium is not installed (apt-get install apertium apertium-eng-spa)")
        self._pipelines = {pair: ApertiumPipeline(mode) for pair, mode in installed_pairs(modes_dir).items()}

    def targets(self, source: str) -> list[str]:
        """The languages ``source`` translates into."""
        return sorted(target for (src, target) in self._pipelines if src == source)

    def translate(self, text: str, source: str, target: str) -> str:
        pipeline = self._pipelines.get((source, target))
        if pipeline is None:
            raise TranslationError(
                f"no translation from {source} to {target!r}; installed: {', '.join(self.targets(source))}")
        return pipeline.translate(text)

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.close()
