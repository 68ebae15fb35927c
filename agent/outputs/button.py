"""The mute button: toggle-mute or push-to-talk, on a GPIO pin from the pin factory."""

from __future__ import annotations

from agent.outputs.config import ButtonConfig
from agent.outputs.pins import PinFactory


class GpioButton:
    """A button from ``pin`` to ground, internal pull-up, debounced edge detection."""

    def __init__(self, config: ButtonConfig, on_press, on_release, pins: PinFactory):
        self._gpio, self._pin = gpio, pin = pins.gpio("outputs.button.pin"), config.pin
        gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)

        def edge(channel):
            (on_press if gpio.input(channel) == gpio.LOW else on_release)()

        gpio.add_event_detect(pin, gpio.BOTH, callback=edge, bouncetime=max(1, config.bounce_ms))

    def close(self) -> None:
        self._gpio.remove_event_detect(self._pin)
        self._gpio.cleanup(self._pin)


def attach_button(config: ButtonConfig, state, pins: PinFactory) -> GpioButton | None:
    """Wire the configured button to the state machine; None when there is no button."""
    if config.pin is None:
        return None
    if config.mode == "push-to-talk":
        state.set_muted(True)
        on_press, on_release = (lambda: state.set_muted(False)), (lambda: state.set_muted(True))
    else:
        on_press, on_release = state.toggle_mute, (lambda: None)
    return GpioButton(config, on_press, on_release, pins)
