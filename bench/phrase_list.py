"""Phrase lists: names heard and WER with and without the sentence's names as a phrase list, side by
side in one run, through the official Python SDK against a real gateway (Whisper tiny.en).

    PARLEY_SHARED_DATA=../shared/data python bench/phrase_list.py   # ~1 minute on 2 cores

Writes bench/results/phrase_list.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from gateway.config import GatewayConfig  # noqa: E402
from gateway.server import GatewayThread  # noqa: E402
from tests.gateway.test_sdk_phrase_list import recognize_once  # noqa: E402
from tests.support.data import shared_data_dir  # noqa: E402
from tests.support.rare_names import name_sentences, names_heard  # noqa: E402
from tests.support.speech import word_errors  # noqa: E402
from tests.support.wavfiles import write_wav  # noqa: E402


def main() -> None:
    cases = name_sentences(shared_data_dir())
    totals = {arm: {"names": 0, "errors": 0} for arm in ("without", "with")}
    rows, names_total, words_total = [], 0, 0
    gap = np.zeros(8000, dtype=np.int16)
    with GatewayThread(GatewayConfig(port=0)) as gateway, tempfile.TemporaryDirectory() as folder:
        for n, (text, names, pcm) in enumerate(cases):
            path = write_wav(Path(folder) / f"{n}.wav", np.concatenate([gap, pcm, gap, gap]))
            row = {"reference": text, "names": list(names)}
            for arm, phrases in (("without", ()), ("with", names)):
                heard = recognize_once(gateway, path, phrases)
                errors, words = word_errors(text, heard)
                totals[arm]["names"] += names_heard(names, heard)
                totals[arm]["errors"] += errors
                row[arm] = heard
            names_total += len(names)
            words_total += words
            rows.append(row)
    summary = {arm: {"names_heard": t["names"], "names": names_total, "wer": round(t["errors"] / words_total, 3)}
               for arm, t in totals.items()}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": "tiny.en",
              "sentences": len(cases), "summary": summary, "rows": rows}
    out = REPO / "bench" / "results" / "phrase_list.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
