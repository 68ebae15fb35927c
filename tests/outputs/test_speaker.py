"""The speaker: order, stale skipping, the half-duplex gate, and a real ALSA output path."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import time
import wave

import numpy as np
import pytest

from agent.events import SynthesizedSpeech
from agent.outputs.config import SpeakerConfig
from agent.outputs.speaker import Speaker


def wav_bytes(seconds: float, freq_hz: float = 440.0, rate_hz: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes((8000 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes())
    return buffer.getvalue()


def speech(n: int, seconds: float = 0.3, age_s: float = 0.0, language: str = "es") -> SynthesizedSpeech:
    """Speech for what was said ``age_s`` ago, received just now."""
    now = time.monotonic()
    return SynthesizedSpeech(n, language, wav_bytes(seconds), now, now - age_s)


def test_plays_in_order_skips_stale_and_other_languages(tmp_path):
    finished = []
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=False, max_age_ms=2000,
                                    languages=("es",)),
                      on_playback_finished=lambda: finished.append(time.monotonic()))
    speaker.start()
    speaker.play(speech(1))
    speaker.play(speech(2, age_s=5.0))  # older than max_age_ms: skipped
    speaker.play(speech(3, language="ca"))  # not a language to speak
    speaker.play(speech(4))
    deadline = time.monotonic() + 5
    while not speaker.idle and time.monotonic() < deadline:
        time.sleep(0.02)
    speaker.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001-es.wav", "0004-es.wav"]
    assert speaker.played == 2 and speaker.skipped_stale == 1 and len(finished) == 2


def test_age_counts_from_the_end_of_speech_so_a_backlog_is_not_spoken_and_never_gates_the_mic(tmp_path, caplog):
    caplog.set_level(logging.INFO, "parley.speaker")
    gated = []
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True, max_age_ms=2000),
                      on_playback_started=lambda: gated.append(1))
    speaker.start()
    now = time.monotonic()
    speaker.play(SynthesizedSpeech(1, "es", wav_bytes(0.3), now, now - 30.0))  # just arrived, said 30 s ago
    speaker.play(SynthesizedSpeech(2, "es", wav_bytes(0.3), now, None))  # said before a restart
    speaker.play(speech(3, age_s=0.5))
    speaker.play(speech(3))  # a second piece of the same utterance: its own file
    deadline = time.monotonic() + 5
    while speaker.played < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    speaker.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0003-es-2.wav", "0003-es.wav"]
    assert speaker.skipped_stale == 2 and len(gated) == 2
    assert "not speaking utterance 1: said 30.0 s ago" in caplog.text
    assert "not speaking utterance 2: it was said before a restart" in caplog.text


def test_gate_is_closed_for_the_whole_playback_plus_the_tail(tmp_path):
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True, gate_tail_ms=300))
    speaker.start()
    assert speaker.mic_gate_open()
    started = time.monotonic()
    speaker.play(speech(1, seconds=0.6))
    while speaker.mic_gate_open() and time.monotonic() - started < 1:
        time.sleep(0.005)
    closed_at = time.monotonic()
    while not speaker.mic_gate_open() and time.monotonic() - started < 5:
        time.sleep(0.005)
    reopened_after_s = time.monotonic() - closed_at
    speaker.close()
    assert closed_at - started < 0.2
    assert reopened_after_s >= 0.6 + 0.3 - 0.02  # audio duration + tail, never earlier


@pytest.fixture
def alsa_out(tmp_path):
    raw = tmp_path / "out.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(textwrap.dedent(f"""\
        </usr/share/alsa/alsa.conf>
        pcm.parley_out {{
          type file
          slave.pcm "null"
          file "{raw}"
          format "raw"
        }}
        """))
    return conf, raw


def test_pyaudio_backend_plays_through_a_real_alsa_device_resampled(alsa_out):
    conf, raw = alsa_out
    code = textwrap.dedent("""\
        import io, json, time, wave, numpy as np
        from agent.events import SynthesizedSpeech
        from agent.outputs.config import SpeakerConfig
        from agent.outputs.speaker import Speaker
        t = np.arange(16000) / 16000
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
            w.writeframes((8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes())
        done = []
        speaker = Speaker(SpeakerConfig(backend="pyaudio", device="parley_out"), on_playback_finished=lambda: done.append(1))
        speaker.start()
        speaker.play(SynthesizedSpeech(1, "es", buf.getvalue(), time.monotonic(), time.monotonic()))
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        rate = speaker.sink.rate_hz
        speaker.close()
        print("RESULT=" + json.dumps({"rate": rate, "done": len(done)}))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"ALSA_CONFIG_PATH": str(conf), "PATH": "/usr/bin:/bin"})
    line = next((found for found in proc.stdout.splitlines() if found.startswith("RESULT=")), None)
    assert line, proc.stderr[-2000:]
    result = json.loads(line[7:])
    assert result["done"] == 1
    played = np.fromfile(raw, dtype="<i2").astype(float)
    rate = result["rate"]
    assert abs(len(played) - rate) <= rate * 0.1  # one second of audio at the device's rate
    spectrum = np.abs(np.fft.rfft(played * np.hanning(len(played))))
    assert abs(np.argmax(spectrum) * rate / len(played) - 500.0) < 3.0


def test_missing_output_device_lists_what_exists(alsa_out):
    conf, _ = alsa_out
    code = textwrap.dedent("""\
        from agent.outputs.config import SpeakerConfig
        from agent.outputs.health import OutputHealth
        from agent.outputs.speaker import Speaker
        health = OutputHealth()
        speaker = Speaker(SpeakerConfig(backend="pyaudio", device="hdmi-speaker-9"), health=health)
        print("ERROR=" + " ".join(health.problems()), speaker.sink)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"ALSA_CONFIG_PATH": str(conf), "PATH": "/usr/bin:/bin"})
    assert "no output device matches 'hdmi-speaker-9'" in proc.stdout and "parley_out" in proc.stdout
    assert "waiting for an output device" in proc.stdout and proc.stdout.rstrip().endswith("None")



def played_wav(path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("mode", ["stop", "duck", "continue"])
def test_barge_in_stops_ducks_or_plays_on(tmp_path, mode):
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True, barge_in=mode, duck_db=-20))
    speaker.start()
    speaker.play(speech(1, seconds=1.5))
    assert wait_until(lambda: speaker.playing)
    time.sleep(0.5)
    speaker.barge_in()  # the pipeline heard someone speak over it
    assert wait_until(lambda: not speaker.playing, timeout_s=3.0)
    speaker.close()
    samples = played_wav(tmp_path / "0001-es.wav")
    rms = lambda x: np.sqrt(np.mean(x ** 2))  # noqa: E731
    assert speaker.barge_ins == 1
    if mode == "stop":
        assert 0.4 * 16000 < len(samples) < 0.8 * 16000  # cut within a chunk or two of the barge-in
    else:
        assert len(samples) == int(1.5 * 16000)
        late = rms(samples[-8000:]) / rms(samples[:4000])
        assert (0.07 < late < 0.13) if mode == "duck" else late > 0.9  # -20 dB, or untouched


def test_playback_never_starts_while_someone_speaks_and_waits_for_the_pause(tmp_path, caplog):
    caplog.set_level(logging.INFO, "parley.speaker")
    talking = {"now": True}
    started = []
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True, max_age_ms=3000),
                      on_playback_started=lambda: started.append(time.monotonic()), talker_speaking=lambda: talking["now"])
    speaker.start()
    speaker.play(speech(1))
    time.sleep(0.6)
    assert not started  # held while the room talks
    paused_at = time.monotonic()
    talking["now"] = False
    assert wait_until(lambda: started)
    assert started[0] - paused_at < 0.2  # played in the pause
    talking["now"] = True
    speaker.play(speech(2, age_s=2.0))  # fresh, but goes stale while the talker goes on
    time.sleep(1.5)
    speaker.close()
    assert len(started) == 1 and speaker.skipped_stale == 1
    assert "holding utterance 1: someone is speaking" in caplog.text
    assert "not speaking utterance 2: the room was talking until it went stale" in caplog.text


def test_close_stops_a_long_playback_at_once(tmp_path):
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True))
    speaker.start()
    speaker.play(speech(1, seconds=8.0))
    assert wait_until(lambda: speaker.playing)
    started = time.monotonic()
    speaker.close(timeout_s=1.0)
    assert time.monotonic() - started < 0.3 and not speaker._thread.is_alive()


def test_a_wav_speaker_writes_the_echo_reference_before_the_pipeline_needs_it(tmp_path, caplog):
    """A WAV sink has no device buffer; the reference used to be written only once its chunk had
    "played", so a pipeline keeping up with the capture found it missing and fell back to the gate
    (the quick soak logged "echo reference stalled" on an idle machine)."""
    from agent.dsp.echo import EchoConfig
    from agent.dsp.echo_reference import CaptureClock, ReferenceTimeline
    from agent.duplex import Duplex
    from parley_common.frames import Frame

    rate, frame_samples = 16000, 320
    clock = CaptureClock(rate)
    timeline = ReferenceTimeline(clock)
    speaker = Speaker(SpeakerConfig(backend="wav", output_dir=str(tmp_path), realtime=True), reference=timeline,
                      capture_rate_hz=rate)
    duplex = Duplex("speex", EchoConfig(), SpeakerConfig(), timeline, speaker, rate, frame_samples)
    speaker.start()
    started = time.monotonic()
    missing_frames = []
    for i in range(100):  # 2 s of capture, each frame read the moment it is complete, as an idle pipeline does
        time.sleep(max(0.0, started + (i + 1) * frame_samples / rate - time.monotonic()))
        clock.observe((i + 1) * frame_samples, time.monotonic())
        if i == 5:
            speaker.play(speech(1, seconds=1.2))
        frame = Frame(np.zeros((frame_samples, 4), np.int16), i * frame_samples, rate)
        duplex.reference_for(frame)
        missing_frames.append(timeline.read(frame.start_sample - duplex.offset_samples, frame_samples)[1] > 0)
    speaker.close()
    assert speaker.played == 1
    assert not duplex.stalled and "stalled" not in caplog.text
    assert sum(missing_frames) <= 2  # at most the first chunk's race with the playback's start
