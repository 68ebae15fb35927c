"""A phrase list (the SDK's PhraseListGrammar, ``dgi`` in speech.context) biases Whisper towards its
names (issue 22): over several sentences with rare names, many more come out right with the list."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.data import shared_data_dir
from tests.support.rare_names import name_sentences, names_heard

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")


def recognize_once(gateway, path, phrases: tuple[str, ...]) -> str:
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    recognizer = speechsdk.SpeechRecognizer(speech_config=config,
                                            audio_config=speechsdk.audio.AudioConfig(filename=str(path)))
    if phrases:
        grammar = speechsdk.PhraseListGrammar.from_recognizer(recognizer)
        for phrase in phrases:
            grammar.addPhrase(phrase)
    return recognizer.recognize_once().text


def test_a_phrase_list_fixes_misrecognized_names(gateway, wav_file):
    gap = np.zeros(8000, dtype=np.int16)
    heard = {"without": 0, "with": 0}
    total = 0
    for n, (_text, names, pcm) in enumerate(name_sentences(shared_data_dir())):
        path = wav_file(f"names{n}.wav", np.concatenate([gap, pcm, gap, gap]))
        total += len(names)
        heard["without"] += names_heard(names, recognize_once(gateway, path, ()))
        heard["with"] += names_heard(names, recognize_once(gateway, path, names))
    print("names heard of", total, heard)
    assert heard["with"] >= heard["without"] + total // 3, heard
    assert heard["with"] >= 0.75 * total, heard
