"""DOA, beamformers and STFT on signals with known answers."""

from __future__ import annotations


import numpy as np
import pytest

from agent.dsp.beamformer import Beamformer, BeamformerConfig
from agent.dsp.doa import DoaConfig, WhitenedMusicDoa
from agent.dsp.stft import StreamingStft
from agent.hardware import load_array_profile
from tests.support.signals import plane_wave

RATE_HZ = 16000
HOP = 160


def spectra(multichannel: np.ndarray, channels: int):
    stft = StreamingStft(HOP, channels)
    return stft, [stft.analyze(multichannel[i:i + HOP]) for i in range(0, len(multichannel) - HOP + 1, HOP)]


def test_stft_reconstructs_the_input_delayed_by_one_hop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000).astype(np.float32)
    stft = StreamingStft(HOP, 1)
    y = np.concatenate([stft.synthesize(stft.analyze(x[i:i + HOP, None])[:, 0]) for i in range(0, 4000, HOP)])
    assert np.max(np.abs(y[2 * HOP:] - x[HOP:-HOP])) < 1e-4


@pytest.mark.parametrize("profile", ["respeaker-4mic-hat", "respeaker-6mic-hat", "matrix-voice"])
@pytest.mark.parametrize("azimuth_deg", [0.0, 37.0, 90.0, 200.0, 315.5])
def test_doa_finds_a_plane_wave_with_the_documented_orientation(profile, azimuth_deg):
    geometry = load_array_profile(profile)
    rng = np.random.default_rng(1)
    source = rng.standard_normal(RATE_HZ) * 3000
    mics = plane_wave(source, geometry.mic_positions_m, azimuth_deg)
    doa = WhitenedMusicDoa(DoaConfig(), geometry, RATE_HZ, 512, HOP)
    for spectrum in spectra(mics, geometry.n_mics)[1]:
        doa.add_speech(spectrum)
    error = abs((doa.azimuth_deg - azimuth_deg + 180) % 360 - 180)
    assert error < 1.0
    assert doa.confidence > 0.5


@pytest.mark.parametrize("profile", ["respeaker-4mic-hat", "respeaker-6mic-hat"])
def test_doa_finds_a_talker_quieter_than_an_interferer_it_has_heard_alone(profile):
    """The interferer (200°) is 3 dB louder than the talker (45°) during speech; only the noise
    whitening learned from the non-speech frames keeps the estimate off the interferer."""
    geometry = load_array_profile(profile)
    rng = np.random.default_rng(3)
    seconds = RATE_HZ * 2
    interferer = plane_wave(rng.standard_normal(seconds) * 3000, geometry.mic_positions_m, 200.0)
    talker = plane_wave(rng.standard_normal(seconds // 2) * 3000 / np.sqrt(2), geometry.mic_positions_m, 45.0)
    sensor = rng.standard_normal(interferer.shape) * 30
    mixture = interferer + sensor
    mixture[seconds // 2:] += talker
    doa = WhitenedMusicDoa(DoaConfig(), geometry, RATE_HZ, 512, HOP)
    _, frames = spectra(mixture, geometry.n_mics)
    for k, spectrum in enumerate(frames):
        if (k + 1) * HOP <= seconds // 2:
            doa.add_noise(spectrum)
        elif k * HOP >= seconds // 2:
            doa.add_speech(spectrum)
    error = abs((doa.azimuth_deg - 45.0 + 180) % 360 - 180)
    assert error < 3.0


def test_without_noise_frames_the_louder_source_wins():
    """The same mixture with no noise-only frames to learn from: the estimate goes to the louder source,
    which shows the previous test depends on the whitening and not on luck."""
    geometry = load_array_profile("respeaker-4mic-hat")
    rng = np.random.default_rng(3)
    interferer = plane_wave(rng.standard_normal(RATE_HZ) * 3000, geometry.mic_positions_m, 200.0)
    talker = plane_wave(rng.standard_normal(RATE_HZ) * 3000 / np.sqrt(2), geometry.mic_positions_m, 45.0)
    doa = WhitenedMusicDoa(DoaConfig(), geometry, RATE_HZ, 512, HOP)
    for spectrum in spectra(interferer + talker, geometry.n_mics)[1]:
        doa.add_speech(spectrum)
    assert abs((doa.azimuth_deg - 200.0 + 180) % 360 - 180) < 3.0


def test_a_source_on_plus_y_is_90_degrees_because_the_plus_y_mic_hears_it_first():
    geometry = load_array_profile("respeaker-6mic-hat")
    impulse = np.zeros(2048)
    impulse[1000] = 1.0
    mics = plane_wave(impulse, geometry.mic_positions_m, 90.0)
    arrival = np.argmax(mics, axis=0)
    top = int(np.argmax(geometry.mic_positions_m[:, 1]))
    bottom = int(np.argmin(geometry.mic_positions_m[:, 1]))
    assert arrival[top] < arrival[bottom]


def beam_output_snr_gain_db(kind: str, geometry, speech, noise, azimuth_deg, speech_active):
    """SNR after the beamformer minus SNR at mic 0, with speech and noise through the same weights."""
    former = Beamformer(BeamformerConfig(type=kind), geometry, RATE_HZ, 512, HOP)
    _, speech_spectra = spectra(speech, geometry.n_mics)
    _, noise_spectra = spectra(noise, geometry.n_mics)
    out_speech, out_noise, in_speech, in_noise = 0.0, 0.0, 0.0, 0.0
    for k, (s, n) in enumerate(zip(speech_spectra, noise_spectra)):
        is_noise = not speech_active[k]
        former.process(s + n, azimuth_deg, is_noise)
        w = former.weights
        if k > len(speech_spectra) // 2:  # after the noise statistics have settled
            out_speech += np.sum(np.abs(np.einsum("fm,fm->f", np.conj(w), s)) ** 2)
            out_noise += np.sum(np.abs(np.einsum("fm,fm->f", np.conj(w), n)) ** 2)
            in_speech += np.sum(np.abs(s[:, 0]) ** 2)
            in_noise += np.sum(np.abs(n[:, 0]) ** 2)
    return 10 * np.log10(out_speech / out_noise) - 10 * np.log10(in_speech / in_noise)


@pytest.mark.parametrize("profile", ["respeaker-4mic-hat", "respeaker-6mic-hat"])
def test_das_white_noise_gain_is_ten_log_m(profile):
    geometry = load_array_profile(profile)
    rng = np.random.default_rng(2)
    n = RATE_HZ * 2
    speech = plane_wave(rng.standard_normal(n) * 1000, geometry.mic_positions_m, 120.0)
    noise = rng.standard_normal((n, geometry.n_mics)) * 1000
    gain = beam_output_snr_gain_db("das", geometry, speech, noise, 120.0, np.ones(n // HOP, bool))
    assert gain == pytest.approx(10 * np.log10(geometry.n_mics), abs=0.5)


def test_mvdr_cancels_a_point_interferer_and_never_loses_to_one_mic():
    geometry = load_array_profile("respeaker-6mic-hat")
    rng = np.random.default_rng(3)
    n = RATE_HZ * 4
    talker = rng.standard_normal(n) * 1000
    talker[: n // 4] = 0.0  # the first second is noise only: MVDR learns the noise there
    active = np.array([np.any(talker[i:i + HOP] != 0) for i in range(0, n - HOP + 1, HOP)])
    speech = plane_wave(talker, geometry.mic_positions_m, 30.0)
    interferer = plane_wave(rng.standard_normal(n) * 3000, geometry.mic_positions_m, 200.0)
    sensor = rng.standard_normal((n, geometry.n_mics)) * 30
    mvdr = beam_output_snr_gain_db("mvdr", geometry, speech, interferer + sensor, 30.0, active)
    das = beam_output_snr_gain_db("das", geometry, speech, interferer + sensor, 30.0, active)
    assert mvdr > das + 6.0
    assert mvdr > 10.0
    white = rng.standard_normal((n, geometry.n_mics)) * 1000
    assert beam_output_snr_gain_db("mvdr", geometry, speech, white, 30.0, active) > 0.0


def test_beamformer_none_passes_mic_zero_through():
    geometry = load_array_profile("respeaker-4mic-hat")
    former = Beamformer(BeamformerConfig(type="none"), geometry, RATE_HZ, 512, HOP)
    spectrum = np.arange(257 * 4).reshape(257, 4).astype(complex)
    assert np.array_equal(former.process(spectrum, 45.0, False), spectrum[:, 0])
