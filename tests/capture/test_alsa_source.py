"""The PortAudio capture path against a real ALSA PCM (the ``file`` plugin over ``null``), no sound card.

Each scenario runs in a fresh interpreter because ALSA reads its configuration once per process.
The file plugin delivers its ``infile`` as fast as it is read, which makes overruns and a stalled
reader easy to provoke.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("pyaudio")

PCM_NAME = "parley_test_in"


@pytest.fixture
def alsa(tmp_path):
    """An ALSA config defining ``parley_test_in`` fed from ``in.raw`` (interleaved int16)."""
    infile = tmp_path / "in.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(textwrap.dedent(f"""\
        </usr/share/alsa/alsa.conf>
        pcm.{PCM_NAME} {{
          type file
          slave.pcm "null"
          file "/dev/null"
          infile "{infile}"
          format "raw"
        }}
        """))
    return conf, infile


def run_scenario(conf, body: str, timeout_s: float = 60.0) -> dict:
    """Run ``body`` (which sets ``result``) with ALSA_CONFIG_PATH pointing at our PCM."""
    prelude = textwrap.dedent("""\
        import json, time, numpy as np
        from agent.audio import open_capture, find_input_device, DeviceNotFound
        from agent.audio.config import CaptureConfig
        from agent.hardware import load_array_profile
        result = {}
        """)
    code = prelude + textwrap.dedent(body) + "\nprint('RESULT=' + json.dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s,
                          env={"ALSA_CONFIG_PATH": str(conf), "PATH": "/usr/bin:/bin"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT="):])


def test_eight_channel_48k_stream_yields_six_mapped_16k_channels_with_the_tone_intact(alsa):
    conf, infile = alsa
    rate_hz, seconds = 48000, 12
    t = np.arange(rate_hz * seconds) / rate_hz
    stream = np.zeros((t.size, 8), dtype=np.int16)
    for channel in range(8):  # one tone; its amplitude says which stream channel it came from
        stream[:, channel] = (1000 * (channel + 1) * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    stream.tofile(infile)
    result = run_scenario(conf, f"""
        source = open_capture(CaptureConfig(device="{PCM_NAME}", native_rate_hz=48000, queue_frames=5000),
                              load_array_profile("respeaker-6mic-hat"))
        source.start()
        frames = []
        while len(frames) < 500:  # 10 s at 20 ms
            frame = source.read(1.0)
            if frame is not None:
                frames.append(frame)
        source.close()
        x = np.concatenate([f.samples for f in frames]).astype(float)
        steady = x[1600:]
        spectrum = np.abs(np.fft.rfft(steady[:, 0] * np.hanning(len(steady))))
        result = dict(
            shapes=sorted({{f.samples.shape for f in frames}}),
            starts_contiguous=all(b.start_sample - a.start_sample == 320 for a, b in zip(frames, frames[1:])),
            peak_hz=float(np.argmax(spectrum) * 16000 / len(steady)),
            rms=np.sqrt(np.mean(steady ** 2, axis=0)).tolist(),
            device=source.device.name,
        )
        """)
    assert result["shapes"] == [[320, 6]]
    assert result["starts_contiguous"]
    assert result["device"] == PCM_NAME
    assert abs(result["peak_hz"] - 440.0) < 1.0
    expected_rms = [1000 * (c + 1) / np.sqrt(2) for c in range(6)]
    assert result["rms"] == pytest.approx(expected_rms, rel=0.03)  # and the two loopback channels are gone


def test_a_device_missing_at_start_is_waited_for_and_then_used(alsa):
    """A HAT not yet probed at boot: no crash; the source says what exists, retries, then captures."""
    conf, infile = alsa
    np.full((16000 * 20, 4), 300, dtype=np.int16).tofile(infile)
    full_conf = conf.read_text()
    conf.write_text("</usr/share/alsa/alsa.conf>\n")  # the PCM does not exist yet
    result = run_scenario(conf, f"""
        source = open_capture(CaptureConfig(device="{PCM_NAME}", reopen_initial_ms=100, reopen_max_ms=400),
                              load_array_profile("respeaker-4mic-hat"))
        source.start()
        waiting = [source.read(0.2) for _ in range(10)]
        result = dict(state=source.state, error=source.last_error, frames_while_missing=sum(f is not None for f in waiting))
        open("{conf}", "w").write({full_conf!r})   # the driver comes up
        frame = None
        deadline = time.monotonic() + 10.0
        while frame is None and time.monotonic() < deadline:
            frame = source.read(0.2)
        result.update(resumed=frame is not None, final_state=source.state, attempts=source.reopens)
        source.close()
        """)
    assert result["state"] == "reopening" and result["frames_while_missing"] == 0
    assert f"no input device matches '{PCM_NAME}'" in result["error"]
    assert result["resumed"] and result["final_state"] == "running"
    assert result["attempts"] >= 2


def test_a_stalled_reader_counts_overruns_and_keeps_running(alsa):
    conf, infile = alsa
    np.full((16000 * 20, 4), 300, dtype=np.int16).tofile(infile)
    result = run_scenario(conf, f"""
        source = open_capture(CaptureConfig(device="{PCM_NAME}", queue_frames=8),
                              load_array_profile("respeaker-4mic-hat"))
        source.start()
        first = source.read(1.0)
        time.sleep(1.0)  # the pipeline stalls; the device keeps delivering
        later = [source.read(1.0) for _ in range(20)]
        result = dict(overruns=source.overruns, state=source.state,
                      got_frames=sum(f is not None for f in later), first_ok=first is not None)
        source.close()
        """)
    assert result["first_ok"] and result["state"] == "running"
    assert result["overruns"] > 0
    assert result["got_frames"] == 20


def test_a_lost_device_is_reopened_with_backoff_and_the_clock_skips_the_gap(alsa):
    conf, infile = alsa
    np.full((16000 * 60, 4), 300, dtype=np.int16).tofile(infile)
    result = run_scenario(conf, f"""
        import os, shutil
        infile = "{infile}"
        source = open_capture(CaptureConfig(device="{PCM_NAME}", reopen_initial_ms=100, reopen_max_ms=800),
                              load_array_profile("respeaker-4mic-hat"))
        source.start()
        before = [source.read(1.0) for _ in range(5)]
        shutil.move(infile, infile + ".away")   # the PCM can no longer be opened
        source._stream.stop_stream()            # and the running stream dies, as when a USB array is pulled
        lost_at = time.monotonic()
        states = set()
        while time.monotonic() - lost_at < 4.0:
            frame = source.read(0.2)
            states.add(source.state)
        attempts_while_gone = source.reopens
        error_while_gone = source.last_error
        shutil.move(infile + ".away", infile)   # plugged back in
        after = None
        deadline = time.monotonic() + 5.0
        while after is None and time.monotonic() < deadline:
            after = source.read(0.2)
        result = dict(states=sorted(states), attempts=attempts_while_gone, error=error_while_gone,
                      resumed=after is not None, final_state=source.state,
                      gap_samples=(after.start_sample - before[-1].end_sample) if after else None)
        source.close()
        """)
    assert "reopening" in result["states"]
    assert 2 <= result["attempts"] <= 10, "backoff must neither give up nor spin"
    assert "parley_test_in" in result["error"]
    assert result["resumed"] and result["final_state"] == "running"
    assert result["gap_samples"] >= 16000 * 4  # the clock advanced over the ~4 s outage
