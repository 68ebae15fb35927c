"""Simulated room recordings for the demo and the benchmarks (pyroomacoustics; not a device dependency).

A shoebox room (default 5 x 4 x 2.8 m), the array on a table near the middle, a talker at a known
azimuth and distance saying a list of utterances separated by pauses, and noise that is white,
quasi-diffuse (several uncorrelated real-noise sources around the room) or one point interferer,
scaled to an SNR at mic 0. The speech and noise images are kept apart so a beamformer's SNR gain
can be measured exactly, and the utterance boundaries are the ground truth for the VAD.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.hardware import ArrayGeometry

RATE_HZ = 16000
ARRAY_HEIGHT_M = 0.8
MOUTH_HEIGHT_M = 1.2


@dataclass
class Scene:
    mixture: np.ndarray  # int16 (samples, mics)
    speech_image: np.ndarray  # float (samples, mics)
    noise_image: np.ndarray  # float (samples, mics)
    utterances: list[tuple[int, int]]  # [start, end) samples of each utterance in the timeline
    talker_azimuth_deg: float
    interferer_azimuth_deg: float | None = None
    utterance_azimuths_deg: list[float] | None = None  # where each utterance was said from
    scale: float = 1.0  # what the room's sound was multiplied by to fit int16 (a box's echo gets the same)

    def speech_labels(self, frame_samples: int = 320, threshold_db: float = -35.0) -> np.ndarray:
        """Per-frame speech truth from the clean speech image (energy within 35 dB of its peak)."""
        clean = self.speech_image[:, 0]
        frames = len(clean) // frame_samples
        energy = np.array([np.mean(clean[i * frame_samples:(i + 1) * frame_samples] ** 2) for i in range(frames)])
        return 10 * np.log10(energy + 1e-9) > 10 * np.log10(energy.max() + 1e-9) + threshold_db


def load_noise_recordings(noise_dir: Path | None) -> list[np.ndarray]:
    if noise_dir is None or not Path(noise_dir).is_dir():
        return []
    recordings = []
    for path in sorted(Path(noise_dir).glob("*.wav")):
        with wave.open(str(path)) as wav:
            if wav.getframerate() == RATE_HZ and wav.getsampwidth() == 2:
                data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, wav.getnchannels())
                recordings.append(data[:, 0].astype(float))
    return recordings


def _noise_segment(recordings: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    if recordings:
        source = recordings[rng.integers(len(recordings))]
        if len(source) < length:
            source = np.tile(source, length // len(source) + 1)
        start = rng.integers(0, len(source) - length + 1)
        return source[start:start + length].copy()
    white = rng.standard_normal(length)
    return np.cumsum(white) * 0.02 + white  # reddish, speech-band-heavy noise


def _position(centre: np.ndarray, azimuth_deg: float, distance_m: float, height_m: float, room: np.ndarray) -> np.ndarray:
    a = np.deg2rad(azimuth_deg)
    p = np.array([centre[0] + distance_m * np.cos(a), centre[1] + distance_m * np.sin(a), height_m])
    return np.clip(p, 0.3, room - 0.3)


def room_centre(room: np.ndarray) -> np.ndarray:
    """Where the array sits: on a table a little off the room's middle (no symmetric modes)."""
    return np.array([room[0] / 2 + 0.2, room[1] / 2 - 0.1, ARRAY_HEIGHT_M])


def _simulate(room_dim: np.ndarray, rt60_s: float, mics_world: np.ndarray, sources: list[tuple[np.ndarray, np.ndarray]],
              length: int) -> np.ndarray:
    import pyroomacoustics as pra

    if rt60_s <= 0:
        room = pra.ShoeBox(room_dim, fs=RATE_HZ, max_order=0)
    else:
        absorption, max_order = pra.inverse_sabine(rt60_s, room_dim)
        room = pra.ShoeBox(room_dim, fs=RATE_HZ, materials=pra.Material(absorption), max_order=min(max_order, 17))
    room.add_microphone_array(mics_world.T)
    for position, signal in sources:
        room.add_source(position, signal=signal)
    room.simulate()
    out = room.mic_array.signals.T
    return np.pad(out, ((0, max(0, length - len(out))), (0, 0)))[:length]


def simulate_scene(geometry: ArrayGeometry, talker_signals: list[np.ndarray], talker_azimuth_deg: float,
                   distance_m: float = 1.5, rt60_s: float = 0.3, noise: str = "diffuse", snr_db: float = 10.0,
                   seed: int = 0, noise_dir: Path | None = None, gap_s: float = 1.5,
                   room_dim_m: tuple[float, float, float] = (5.0, 4.0, 2.8),
                   utterance_azimuths_deg: list[float] | None = None) -> Scene:
    """``utterance_azimuths_deg`` puts each utterance's talker at its own azimuth (a conversation
    taking turns); by default every utterance comes from ``talker_azimuth_deg``."""
    rng = np.random.default_rng(seed)
    room = np.array(room_dim_m)
    centre = room_centre(room)
    mics_world = centre + geometry.mic_positions_m
    gap = int(gap_s * RATE_HZ)
    azimuths = list(utterance_azimuths_deg or [talker_azimuth_deg] * len(talker_signals))
    utterances, cursor = [], gap
    for signal in talker_signals:
        utterances.append((cursor, cursor + len(signal)))
        cursor += len(signal) + gap
    length = cursor + RATE_HZ // 4
    sources = []
    for azimuth in dict.fromkeys(azimuths):  # one source per seat, silent while the others talk
        dry = np.zeros(cursor)
        for signal, (start, end), said_from in zip(talker_signals, utterances, azimuths):
            if said_from == azimuth:
                dry[start:end] = signal
        sources.append((_position(centre, azimuth, distance_m, MOUTH_HEIGHT_M, room), dry))
    speech = _simulate(room, rt60_s, mics_world, sources, length)

    recordings = load_noise_recordings(noise_dir)
    interferer_deg = None
    if noise == "white":
        noise_image = rng.standard_normal(speech.shape)
    elif noise == "point":
        interferer_deg = float((talker_azimuth_deg + rng.uniform(60, 300)) % 360)
        where = _position(centre, interferer_deg, rng.uniform(1.0, 2.0), rng.uniform(0.5, 1.5), room)
        noise_image = _simulate(room, rt60_s, mics_world, [(where, _noise_segment(recordings, length, rng))], length)
    elif noise == "diffuse":
        corners = [np.array([x, y, z]) for x, y, z in
                   [(0.4, 0.4, 2.4), (room[0] - 0.4, 0.4, 0.5), (0.4, room[1] - 0.4, 0.6), (room[0] - 0.4, room[1] - 0.4, 2.3),
                    (room[0] / 2, 0.3, 1.5), (room[0] / 2, room[1] - 0.3, 1.0)]]
        sources = [(c, _noise_segment(recordings, length, rng)) for c in corners]
        noise_image = _simulate(room, rt60_s, mics_world, sources, length)
    else:
        raise ValueError(f"noise must be white, point or diffuse, not {noise!r}")

    active = np.zeros(length, bool)
    for start, end in utterances:
        active[start:end] = True
    speech_power = np.mean(speech[active, 0] ** 2)
    noise_power = np.mean(noise_image[:, 0] ** 2) + 1e-12
    noise_image *= np.sqrt(speech_power / noise_power / 10 ** (snr_db / 10))
    mixture = speech + noise_image
    peak = np.max(np.abs(mixture))
    scale = min(1.0, 20000.0 / peak) if peak > 0 else 1.0
    speech, noise_image = speech * scale, noise_image * scale
    return Scene(np.clip(np.round(speech + noise_image), -32768, 32767).astype(np.int16), speech, noise_image,
                 utterances, talker_azimuth_deg, interferer_deg, azimuths, scale)
