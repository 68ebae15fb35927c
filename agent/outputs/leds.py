"""LEDs that show the device state, over swappable backends chosen like gpiozero's pin factories.

Backends (``outputs.leds.backend``): ``rpi-gpio`` (plain LEDs with PWM via RPi.GPIO), ``apa102``
(a ring over spidev, which also points at the talker), ``log``, ``none``, and ``mock`` (records
every write, for tests); ``$PARLEY_PIN_FACTORY=mock`` runs the real ones on mock pins (``pins.py``). Each state is a colour and a pattern;
one thread renders patterns at ``frame_rate_hz``.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from agent.outputs.config import LedConfig
from agent.outputs.health import OutputHealth
from agent.outputs.pins import PinFactory

log = logging.getLogger("parley.leds")

# state -> (colour, pattern, period_s); colours are (r, g, b) in 0..1
PATTERNS = {
    "starting": ((0.0, 0.0, 1.0), "blink", 1.0),
    "idle": ((0.0, 0.25, 0.0), "solid", 0.0),
    "listening": ((0.0, 1.0, 0.0), "solid", 0.0),
    "translating": ((0.0, 0.0, 1.0), "breathe", 1.5),
    "speaking": ((0.0, 0.6, 1.0), "solid", 0.0),
    "muted": ((1.0, 0.0, 0.0), "solid", 0.0),
    "offline": ((1.0, 0.3, 0.0), "blink", 1.0),
    "mic_lost": ((1.0, 0.0, 1.0), "blink", 2.0),  # magenta, slow: waiting for the microphone
    "output_lost": ((1.0, 0.8, 0.0), "blink", 2.0),  # yellow, slow: a disk or the speaker fails; the rest works
    "error": ((1.0, 0.0, 0.0), "blink", 0.3),
}


COLOUR_NAMES = {(0.0, 0.0, 1.0): "blue", (0.0, 0.25, 0.0): "dim green", (0.0, 1.0, 0.0): "green",
                (0.0, 0.6, 1.0): "sky blue", (1.0, 0.0, 0.0): "red", (1.0, 0.3, 0.0): "orange", (1.0, 0.0, 1.0): "magenta",
                (1.0, 0.8, 0.0): "yellow"}
PATTERN_WORDS = {"solid": "steady", "blink": "blinking", "breathe": "breathing"}


def colour_table() -> str:
    """The state -> colour table of docs/leds.md, from PATTERNS (a test keeps the two the same)."""
    rows = ["| State | Colour | RGB | Pattern | Period |", "|---|---|---|---|---|"]
    for state, (colour, pattern, period_s) in PATTERNS.items():
        rgb = "#" + "".join(f"{round(c * 255):02X}" for c in colour)
        period = f"{period_s:g} s" if pattern != "solid" else "–"
        rows.append(f"| `{state}` | {COLOUR_NAMES.get(colour, rgb)} | `{rgb}` | {PATTERN_WORDS[pattern]} | {period} |")
    return "\n".join(rows) + "\n"


def pattern_level(pattern: str, period_s: float, t: float) -> float:
    if pattern == "solid" or period_s <= 0:
        return 1.0
    phase = (t % period_s) / period_s
    if pattern == "blink":
        return 1.0 if phase < 0.5 else 0.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * phase)  # breathe


class LedBackend:
    """Shows one colour per LED; ``pixels`` is a list of (r, g, b) in 0..1."""

    num_leds = 1

    def show(self, pixels: list[tuple[float, float, float]]) -> None:
        raise NotImplementedError

    def announce(self, state: str) -> None:
        """Told the state name on every change; backends without a use for it ignore it."""

    def close(self) -> None:
        pass


class NoLeds(LedBackend):
    def show(self, pixels):
        pass


class LogLeds(LedBackend):
    """Logs each state change (not each frame) at debug: ``journalctl -p debug`` shows them, the default view does not."""

    def show(self, pixels):
        pass

    def announce(self, state):
        log.debug("leds: %s", state)


class MockLeds(LedBackend):
    """Records every frame with its time: the tests' window onto the LEDs."""

    def __init__(self, num_leds: int = 1):
        self.num_leds = num_leds
        self.frames: list[tuple[float, list[tuple[float, float, float]]]] = []
        self.states: list[str] = []
        self.closed = False

    def show(self, pixels):
        self.frames.append((time.monotonic(), list(pixels)))

    def announce(self, state):
        self.states.append(state)

    def close(self):
        self.closed = True


class RpiGpioLeds(LedBackend):
    """Plain LEDs on BCM pins, dimmed with software PWM; one pin per colour channel."""

    def __init__(self, config: LedConfig, pins: PinFactory):
        self._gpio = gpio = pins.gpio("outputs.leds.backend rpi-gpio")
        self._pins = list(config.pins.values())
        self._pwm = {}
        for colour, pin in config.pins.items():
            gpio.setup(pin, gpio.OUT, initial=gpio.LOW)
            pwm = gpio.PWM(pin, 200)
            pwm.start(0)
            self._pwm[colour] = pwm
        self._brightness = config.brightness

    def show(self, pixels):
        r, g, b = pixels[0] if pixels else (0.0, 0.0, 0.0)
        for colour, level in (("red", r), ("green", g), ("blue", b)):
            if colour in self._pwm:
                self._pwm[colour].ChangeDutyCycle(100.0 * level * self._brightness)

    def close(self):
        for pwm in self._pwm.values():
            pwm.stop()
        self._gpio.cleanup(self._pins)


def apa102_frame(pixels: list[tuple[float, float, float]], brightness: float) -> bytes:
    """Start frame (32 zero bits), per LED 0b111 + 5-bit brightness then B, G, R; end frame."""
    level = 0xE0 | max(0, min(31, round(brightness * 31)))
    body = b"".join(bytes((level, round(b * 255), round(g * 255), round(r * 255))) for r, g, b in pixels)
    return b"\x00" * 4 + body + b"\xff" * max(4, (len(pixels) + 15) // 16)


class Apa102Ring(LedBackend):
    """A ring of APA102 LEDs on SPI; ``power_pin`` (if wired) switches the ring's supply."""

    def __init__(self, config: LedConfig, pins: PinFactory):
        self.num_leds = config.num_leds
        self._gpio, self._power_pin = None, config.power_pin
        if config.power_pin is not None:
            self._gpio = pins.gpio("outputs.leds.power_pin")
            self._gpio.setup(config.power_pin, self._gpio.OUT, initial=self._gpio.HIGH)
        self._spi = pins.spi(config.spi_bus, config.spi_device, "outputs.leds.backend apa102")
        self._spi.max_speed_hz = 8_000_000
        self._brightness = config.brightness

    def show(self, pixels):
        self._spi.xfer2(list(apa102_frame(pixels, self._brightness)))

    def close(self):
        self._spi.close()
        if self._gpio is not None:
            self._gpio.output(self._power_pin, self._gpio.LOW)
            self._gpio.cleanup(self._power_pin)


def make_led_backend(config: LedConfig, pins: PinFactory) -> LedBackend:
    name = config.backend
    if name == "rpi-gpio":
        return RpiGpioLeds(config, pins)
    if name == "apa102":
        return Apa102Ring(config, pins)
    if name == "mock":
        return MockLeds(config.num_leds)
    if name == "log":
        return LogLeds()
    if name == "none":
        return NoLeds()
    raise ValueError(f"unknown LED backend {name!r}; allowed: rpi-gpio, apa102, log, none, mock")


class LedDriver:
    """Renders the current state's pattern (and the talker's direction on a ring) in its own thread.

    A write that fails (an SPI or GPIO error) costs that frame only: it is reported to ``health`` as
    the ``leds`` output and the next frame tries again, so the LEDs never freeze in one state."""

    def __init__(self, backend: LedBackend, config: LedConfig, health: OutputHealth | None = None):
        self.backend = backend
        self.config = config
        self._health = health or OutputHealth()
        self.num_leds = backend.num_leds
        self._state = "starting"
        self._azimuth_deg: float | None = None
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leds", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def show_state(self, state: str) -> None:
        self._state = state
        self.backend.announce(state)
        self._changed.set()

    def show_direction(self, azimuth_deg: float | None) -> None:
        self._azimuth_deg = azimuth_deg
        self._changed.set()

    def render(self, t: float) -> list[tuple[float, float, float]]:
        colour, pattern, period = PATTERNS[self._state]
        level = pattern_level(pattern, period, t)
        red, green, blue = colour
        pixels = [(red * level, green * level, blue * level)] * self.num_leds
        if self.num_leds > 1 and self._state == "listening" and self._azimuth_deg is not None:
            index = round((self._azimuth_deg - self.config.offset_deg) % 360 / 360 * self.num_leds) % self.num_leds
            pixels = [(0.0, 0.15, 0.0)] * self.num_leds
            pixels[index] = (1.0, 1.0, 1.0)
        return pixels

    def _run(self) -> None:
        interval = 1.0 / self.config.frame_rate_hz
        while not self._stop.is_set():
            self._health.run("leds", self.backend.show, self.render(time.monotonic()))
            animated = PATTERNS[self._state][1] != "solid"
            self._changed.wait(interval if animated else 1.0)
            self._changed.clear()

    def close(self) -> None:
        """Stop rendering and switch every LED off; idempotent (a closed backend is never written)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._changed.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        self.backend.show([(0.0, 0.0, 0.0)] * self.num_leds)
        self.backend.close()


def cycle_led_states(driver: LedDriver, seconds_per_state: float) -> None:
    """For installers: every state in turn, named in the log."""
    for state in PATTERNS:
        print(f"showing {state}", flush=True)
        driver.show_state(state)
        time.sleep(seconds_per_state)
