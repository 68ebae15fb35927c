"""One factory for every GPIO device, like gpiozero's pin factories.

Devices (LEDs, the APA102 ring, the button) ask the factory for the low-level handle (``gpio()``
for RPi.GPIO, ``spi()`` for spidev) instead of importing it, so the real device code runs against
``FakeGpio``/``FakeSpi`` in tests and with the ``mock`` LED backend. The factory calls
``setmode`` once, and says which package is missing, for which key. ``$PARLEY_PIN_FACTORY``
(``board`` or ``mock``) picks the pins, as ``GPIOZERO_PIN_FACTORY`` does, and nothing else: the
configured LED backend and button run unchanged on mock pins. It is read here only.
"""

from __future__ import annotations

import os
from typing import Callable

MOCK = "mock"
BOARD = "board"
PIN_FACTORY_ENV = "PARLEY_PIN_FACTORY"
PIN_FACTORIES = (BOARD, MOCK)


class PinFactory:
    """The handles of the real board, imported on first use: RPi.GPIO (BCM numbering) and spidev."""

    def __init__(self, gpio=None, spi_class=None):
        self._gpio, self._spi_class = gpio, spi_class
        self._mode_set = False

    def gpio(self, needed_by: str):
        if self._gpio is None:
            try:
                import RPi.GPIO
            except ImportError:
                raise RuntimeError(f"{needed_by} needs RPi.GPIO (pip install 'parley[pi]'; on a Pi 5: rpi-lgpio)") from None
            self._gpio = RPi.GPIO
        if not self._mode_set:
            self._gpio.setmode(self._gpio.BCM)
            self._mode_set = True
        return self._gpio

    def spi(self, bus: int, device: int, needed_by: str):
        if self._spi_class is None:
            try:
                import spidev
            except ImportError:
                raise RuntimeError(f"{needed_by} needs spidev (pip install 'parley[pi]')") from None
            self._spi_class = spidev.SpiDev
        spi = self._spi_class()
        spi.open(bus, device)
        return spi


class FakePwm:
    def __init__(self, pin: int, frequency_hz: float):
        self.pin, self.frequency_hz = pin, frequency_hz
        self.duty_cycles: list[float] = []
        self.running = False

    def start(self, duty_cycle: float) -> None:
        self.running = True
        self.duty_cycles.append(duty_cycle)

    def ChangeDutyCycle(self, duty_cycle: float) -> None:  # noqa: N802 (RPi.GPIO's name)
        self.duty_cycles.append(duty_cycle)

    def stop(self) -> None:
        self.running = False


class FakeGpio:
    """RPi.GPIO's surface in memory: pin levels, PWM, edge callbacks; ``drive()`` changes an input."""

    BCM, OUT, IN, LOW, HIGH, PUD_UP, BOTH = "BCM", "out", "in", 0, 1, "up", "both"

    def __init__(self) -> None:
        self.mode: str | None = None
        self.directions: dict[int, str] = {}
        self.levels: dict[int, int] = {}
        self.pwms: dict[int, FakePwm] = {}
        self.callbacks: dict[int, Callable[[int], object]] = {}

    def setmode(self, mode: str) -> None:
        self.mode = mode

    def setup(self, pin: int, direction: str, initial: int | None = None, pull_up_down: str | None = None) -> None:
        assert self.mode is not None, "setmode before setup"
        self.directions[pin] = direction
        self.levels[pin] = initial if initial is not None else (self.HIGH if pull_up_down == self.PUD_UP else self.LOW)

    def output(self, pin: int, level: int) -> None:
        assert self.directions.get(pin) == self.OUT, f"pin {pin} is not an output"
        self.levels[pin] = level

    def input(self, pin: int) -> int:
        return self.levels[pin]

    def PWM(self, pin: int, frequency_hz: float) -> FakePwm:  # noqa: N802 (RPi.GPIO's name)
        self.pwms[pin] = FakePwm(pin, frequency_hz)
        return self.pwms[pin]

    def add_event_detect(self, pin: int, edge: str, callback, bouncetime: int) -> None:
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin: int) -> None:
        self.callbacks.pop(pin, None)

    def cleanup(self, pins=None) -> None:
        for pin in ([pins] if isinstance(pins, int) else list(pins) if pins is not None else list(self.directions)):
            self.directions.pop(pin, None)
            self.levels.pop(pin, None)

    def drive(self, pin: int, level: int) -> None:
        """Someone pressed or released what is wired to ``pin``."""
        self.levels[pin] = level
        if pin in self.callbacks:
            self.callbacks[pin](pin)


class FakeSpi:
    def __init__(self) -> None:
        self.transfers: list[list[int]] = []
        self.max_speed_hz = 0
        self.opened: tuple[int, int] | None = None

    def open(self, bus: int, device: int) -> None:
        self.opened = (bus, device)

    def xfer2(self, data: list[int]) -> list[int]:
        assert self.opened is not None, "transfer on a closed SPI device"
        self.transfers.append(list(data))
        return [0] * len(data)

    def close(self) -> None:
        self.opened = None


def fake_pin_factory() -> PinFactory:
    return PinFactory(FakeGpio(), FakeSpi)


def pin_factory_name(led_backend: str) -> str:
    """``$PARLEY_PIN_FACTORY`` when set, else ``mock`` for the ``mock`` LED backend, else ``board``."""
    return os.environ.get(PIN_FACTORY_ENV) or (MOCK if led_backend == MOCK else BOARD)


def pin_factory_problem(led_backend: str) -> str | None:
    name = pin_factory_name(led_backend)
    return None if name in PIN_FACTORIES else f"{PIN_FACTORY_ENV}={name!r}: allowed: {', '.join(PIN_FACTORIES)}"


def make_pin_factory(led_backend: str) -> PinFactory:
    problem = pin_factory_problem(led_backend)
    if problem:
        raise ValueError(problem)
    return fake_pin_factory() if pin_factory_name(led_backend) == MOCK else PinFactory()
