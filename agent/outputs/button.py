"""The mute button: toggle-mute or push-to-talk, on an RPi.GPIO pin or a mock for tests."""

from __future__ import annotations

import os

from agent.outputs.config import ButtonConfig


class MockButton:
    """Same callbacks as the GPIO button; tests call ``press()``/``release()``."""

    def __init__(self, on_press, on_release):
        self._on_press, self._on_release = on_press, on_release

    def press(self) -> None:
        self._on_press()

    def release(self) -> None:
        self._on_release()

    def close(self) -> None:
        pass


class GpioButton:
    """A button from ``pin`` to ground, internal pull-up, debounced edge detection."""

    def __init__(self, config: ButtonConfig, on_press, on_release):
        try:
            import RPi.GPIO as GPIO
        except ImportError:
            raise RuntimeError("outputs.button.pin needs RPi.GPIO (pip install 'parley[pi]')") from None
        self._gpio, self._pin = GPIO, config.pin
        GPIO.setmode(GPIO.BCM)
        GPIO.setup(self._pin, GPIO.IN, pull_up_down=GPIO.PUD_UP)

        def edge(channel):
            (on_press if GPIO.input(channel) == GPIO.LOW else on_release)()

        GPIO.add_event_detect(self._pin, GPIO.BOTH, callback=edge, bouncetime=max(1, config.bounce_ms))

    def close(self) -> None:
        self._gpio.remove_event_detect(self._pin)
        self._gpio.cleanup(self._pin)


def attach_button(config: ButtonConfig, state, led_backend_name: str):
    """Wire the configured button to the state machine; None when there is no button."""
    if config.pin is None:
        return None
    if config.mode == "push-to-talk":
        state.set_muted(True)
        on_press, on_release = (lambda: state.set_muted(False)), (lambda: state.set_muted(True))
    else:
        on_press, on_release = state.toggle_mute, (lambda: None)
    if os.environ.get("PARLEY_LED_BACKEND", led_backend_name) == "mock":
        return MockButton(on_press, on_release)
    return GpioButton(config, on_press, on_release)
