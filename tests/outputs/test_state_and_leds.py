"""Device state precedence and exits, and what the LEDs render for each state."""

from __future__ import annotations

import time

import pytest

from agent.outputs.button import attach_button
from agent.outputs.config import ButtonConfig, LedConfig
from agent.outputs.health import OutputHealth
from agent.outputs.leds import PATTERNS, Apa102Ring, LedDriver, MockLeds, apa102_frame, make_led_backend, pattern_level
from agent.outputs.pins import PinFactory, fake_pin_factory, make_pin_factory
from agent.state import DeviceStateMachine


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def started_machine(clock=None):
    machine = DeviceStateMachine(translating_timeout_s=10.0, clock=clock or time.monotonic)
    machine.started()
    return machine


def test_a_normal_utterance_walks_listening_translating_speaking_idle():
    machine = started_machine()
    machine.link_changed(True)
    machine.speech_started()
    machine.speech_ended()
    machine.final_received()
    machine.speaker_started()
    machine.speaker_finished()
    assert machine.history == ["starting", "idle", "listening", "translating", "idle", "speaking", "idle"]


def test_translating_times_out_when_no_final_comes():
    clock = FakeClock()
    machine = started_machine(clock)
    machine.speech_started()
    machine.speech_ended()
    assert machine.current == "translating"
    clock.now = 9.0
    machine.tick()
    assert machine.current == "translating"
    clock.now = 10.5
    machine.tick()
    assert machine.current == "idle"


def test_precedence_error_over_offline_over_muted_over_speaking():
    machine = started_machine()
    machine.speaker_started()
    machine.set_muted(True)
    assert machine.current == "muted"
    machine.link_changed(False)
    assert machine.current == "offline"
    machine.uplink_error("401", fatal=True)
    assert machine.current == "error"
    machine.link_changed(True)  # the cause cleared: back to what still holds
    assert machine.current == "muted"
    machine.toggle_mute()
    assert machine.current == "speaking"
    machine.speaker_finished()
    assert machine.current == "idle"


def test_an_utterance_the_service_refused_shows_as_an_error_until_the_next_final():
    machine = started_machine()
    machine.link_changed(True)
    machine.uplink_error("utterance 1 dropped: the service answered BadRequest", fatal=True)
    assert machine.current == "error"
    machine.final_received()
    assert machine.current == "idle"


def test_a_lost_mic_is_its_own_state_below_a_fatal_error_and_clears_when_audio_flows():
    machine = started_machine()
    machine.link_changed(False)
    machine.capture_stalled("input device 'seeed' lost")
    assert machine.current == "mic_lost"
    machine.uplink_error("401", fatal=True)
    assert machine.current == "error"
    machine.link_changed(True)
    assert machine.current == "mic_lost"
    machine.capture_ok()
    assert machine.current == "idle"


def test_every_state_has_a_pattern_and_patterns_move():
    assert set(PATTERNS) == {"starting", "idle", "listening", "translating", "speaking", "muted", "output_lost", "offline",
                             "mic_lost", "error"}
    assert pattern_level("blink", 1.0, 0.25) == 1.0 and pattern_level("blink", 1.0, 0.75) == 0.0
    assert pattern_level("breathe", 2.0, 0.0) == pytest.approx(0.0)
    assert pattern_level("breathe", 2.0, 1.0) == pytest.approx(1.0)


def test_mock_backend_records_the_state_sequence_and_ends_dark():
    backend = MockLeds(num_leds=12)
    driver = LedDriver(backend, LedConfig(backend="mock", frame_rate_hz=50))
    machine = started_machine()
    machine.subscribe(driver.show_state)
    driver.start()
    machine.speech_started()
    driver.show_direction(90.0)
    time.sleep(0.1)
    machine.speech_ended()
    time.sleep(0.1)
    driver.close()
    assert backend.states == ["idle", "listening", "translating"]
    listening = [pixels for _, pixels in backend.frames if (1.0, 1.0, 1.0) in pixels]
    assert listening and listening[0].index((1.0, 1.0, 1.0)) == 3  # 90 deg on a 12-LED ring
    assert backend.frames[-1][1] == [(0.0, 0.0, 0.0)] * 12 and backend.closed


class FlakySpi(MockLeds):
    """An LED ring whose writes fail for a while (an SPI error), then work again."""

    def __init__(self, failures: int):
        super().__init__(num_leds=12)
        self.failures = failures

    def show(self, pixels):
        if self.failures > 0:
            self.failures -= 1
            raise OSError(5, "Input/output error")
        super().show(pixels)


def test_a_failing_led_write_is_reported_and_the_leds_recover_instead_of_freezing():
    backend = FlakySpi(failures=5)
    failing_seen = []
    health = OutputHealth(on_change=failing_seen.append)
    driver = LedDriver(backend, LedConfig(backend="mock", frame_rate_hz=50), health)
    driver.start()
    driver.show_state("listening")  # animated: a frame every 20 ms
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not backend.frames:
        time.sleep(0.02)
    driver.show_state("idle")
    time.sleep(0.1)
    driver.close()
    assert backend.failures == 0 and len(backend.frames) >= 2  # the thread outlived the errors
    assert failing_seen[0] == ("leds",) and failing_seen[-1] == ()  # reported, then cleared
    assert "Input/output error" not in " ".join(health.problems())  # it works again


def test_direction_respects_the_ring_offset():
    backend = MockLeds(num_leds=12)
    driver = LedDriver(backend, LedConfig(backend="mock", offset_deg=90.0))
    driver.show_state("listening")
    driver.show_direction(90.0)
    assert driver.render(0.0).index((1.0, 1.0, 1.0)) == 0


def test_apa102_frame_layout():
    frame = apa102_frame([(1.0, 0.0, 0.0), (0.0, 0.5, 1.0)], brightness=1.0)
    assert frame[:4] == b"\x00\x00\x00\x00"
    assert frame[4:8] == bytes([0xFF, 0, 0, 255])  # 0xE0 | 31, then B, G, R
    assert frame[8:12] == bytes([0xFF, 255, 128, 0])
    assert frame[12:] == b"\xff" * 4


def test_the_backend_comes_from_config_and_the_environment_picks_only_the_pins(monkeypatch):
    monkeypatch.delenv("PARLEY_PIN_FACTORY", raising=False)
    assert isinstance(make_led_backend(LedConfig(backend="mock"), PinFactory()), MockLeds)
    assert isinstance(make_pin_factory("mock").gpio("test"), type(fake_pin_factory().gpio("test")))
    with pytest.raises(RuntimeError, match="outputs.leds.backend rpi-gpio needs RPi.GPIO"):
        make_led_backend(LedConfig(backend="rpi-gpio"), make_pin_factory("rpi-gpio"))
    monkeypatch.setenv("PARLEY_PIN_FACTORY", "mock")  # the real rpi-gpio device code, on mock pins
    pins = make_pin_factory("rpi-gpio")
    leds = make_led_backend(LedConfig(backend="rpi-gpio"), pins)
    assert not isinstance(leds, MockLeds) and pins.gpio("test").directions  # its pins were set up
    leds.close()
    monkeypatch.setenv("PARLEY_PIN_FACTORY", "lazer")
    with pytest.raises(ValueError, match="PARLEY_PIN_FACTORY='lazer': allowed: board, mock"):
        make_pin_factory("log")


def test_rpi_gpio_leds_dim_each_colour_pin_and_release_them():
    pins = fake_pin_factory()
    config = LedConfig(backend="rpi-gpio", brightness=0.5)
    driver = LedDriver(make_led_backend(config, pins), config)
    gpio = pins.gpio("test")
    assert gpio.mode == "BCM" and set(gpio.pwms) == set(config.pins.values())
    driver.show_state("muted")
    driver.start()
    driver.close()
    driver.close()  # twice: nothing shown after close
    red, green = gpio.pwms[config.pins["red"]], gpio.pwms[config.pins["green"]]
    assert 50.0 in red.duty_cycles and red.duty_cycles[-1] == 0.0 and set(green.duty_cycles) == {0.0}
    assert not red.running and not gpio.directions


def test_apa102_ring_sizes_itself_writes_frames_and_switches_its_power_off():
    pins = fake_pin_factory()
    config = LedConfig(backend="apa102", num_leds=12, power_pin=5, brightness=1.0)
    ring = make_led_backend(config, pins)
    gpio = pins.gpio("test")
    assert isinstance(ring, Apa102Ring) and gpio.levels[5] == gpio.HIGH
    driver = LedDriver(ring, config)
    assert driver.num_leds == 12
    driver.show_state("listening")
    driver.show_direction(90.0)
    ring.show(driver.render(0.0))
    spi = ring._spi
    assert bytes(spi.transfers[-1]) == apa102_frame(driver.render(0.0), 1.0)
    driver.close()
    assert bytes(spi.transfers[-1]) == apa102_frame([(0.0, 0.0, 0.0)] * 12, 1.0)
    assert spi.opened is None and 5 not in gpio.directions  # the power pin is released


def test_button_toggles_mute_or_talks_while_held():
    pins = fake_pin_factory()
    gpio = pins.gpio("test")
    machine = started_machine()
    button = attach_button(ButtonConfig(pin=17, mode="toggle-mute"), machine, pins)
    gpio.drive(17, gpio.LOW)
    gpio.drive(17, gpio.HIGH)
    assert machine.current == "muted"
    gpio.drive(17, gpio.LOW)
    assert machine.current == "idle"
    button.close()
    assert 17 not in gpio.callbacks and 17 not in gpio.directions

    talk = started_machine()
    attach_button(ButtonConfig(pin=17, mode="push-to-talk"), talk, pins)
    assert talk.current == "muted"
    gpio.drive(17, gpio.LOW)
    assert talk.current == "idle"
    gpio.drive(17, gpio.HIGH)
    assert talk.current == "muted"
    assert attach_button(ButtonConfig(pin=None), talk, pins) is None
