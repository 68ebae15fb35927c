"""The agent daemon: wires capture -> front end -> uplink -> outputs, and nothing else.

Threads, each forced by a library or by hardware, with bounded queues between them:

    capture (PortAudio callback / WAV pacer) --frames--> pipeline thread
    pipeline thread: FrontEnd.process -> Uplink.send            (never blocks on the network)
    uplink thread (websocket-client) --ResultEvent queue--> results thread
    results thread: console, transcript, speaker queue, state machine
    speaker thread, LED thread: inside their outputs
    main thread: signals, systemd notify/watchdog, state-machine ticks

The device state shown on the LEDs is owned by one DeviceStateMachine; every stage only reports
facts to it.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass

from agent.audio import open_capture
from agent.outputs.button import attach_button
from agent.config.schema import AgentConfig
from agent.events import (
    FinalResult,
    LinkStatus,
    PartialResult,
    SpeechEnded,
    SpeechStarted,
    SynthesizedSpeech,
    UplinkError,
)
from agent.frontend import FrontEnd
from agent.outputs.console import ConsoleOutput
from agent.outputs.leds import LedDriver, make_led_backend
from agent.outputs.speaker import Speaker
from agent.outputs.transcript import TranscriptWriter
from parley_common.sdnotify import SystemdNotifier
from agent.state import DeviceStateMachine
from agent.uplink import make_uplink

log = logging.getLogger("parley.daemon")

RESULT_QUEUE_SIZE = 256
FRAME_READ_TIMEOUT_S = 0.2


@dataclass
class AgentCounters:
    """Written only by the pipeline thread; read by the main thread for status lines."""

    frames: int = 0
    muted_frames: int = 0
    utterances: int = 0
    last_frame_monotonic_s: float = 0.0


class Agent:
    """One running agent. ``start()``, then ``stop()`` (or ``wait_until_drained`` for a finite input)."""

    def __init__(self, config: AgentConfig):
        self.config = config
        self.geometry = config.geometry
        self.counters = AgentCounters()
        self.results: queue.Queue = queue.Queue(maxsize=RESULT_QUEUE_SIZE)
        self.state = DeviceStateMachine()
        self.leds = LedDriver(make_led_backend(config.outputs.leds), config.outputs.leds)
        self.state.subscribe(self.leds.show_state)
        self.capture = open_capture(config.capture, self.geometry)
        self.uplink = make_uplink(config.uplink, self.results)
        self.frontend = FrontEnd(config.frontend, self.geometry, config.capture.sample_rate_hz,
                                 first_utterance_id=self.uplink.next_utterance_id)
        self.speaker = Speaker(
            config.outputs.speaker,
            on_playback_started=self.state.speaker_started,
            on_playback_finished=self.state.speaker_finished,
        )
        self.console = ConsoleOutput(config.outputs.console)
        self.transcript = TranscriptWriter(config.outputs.transcript)
        self.button = attach_button(config.outputs.button, self.state, config.outputs.leds.backend)
        self._stop = threading.Event()
        self._uplink_closed = threading.Event()
        self._input_ended = threading.Event()
        self._pipeline = threading.Thread(target=self._pipeline_loop, name="pipeline", daemon=True)
        self._results_thread = threading.Thread(target=self._results_loop, name="results", daemon=True)
        self._threads = [self._pipeline, self._results_thread]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.state.starting()
        self.leds.start()
        self.speaker.start()
        self.uplink.start()
        self.capture.start()
        for thread in self._threads:
            thread.start()
        self.state.started()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop within ``timeout_s``: end the open utterance, wait for the finals that are due (what
        is still owed stays in the spool), write them, close the socket, LEDs off."""
        budget_s = timeout_s if timeout_s is not None else self.config.daemon.shutdown_timeout_s
        deadline = time.monotonic() + budget_s
        self._stop.set()
        self._pipeline.join(timeout=min(0.5, budget_s / 4))  # it ends the open utterance on its way out
        if self._pipeline.is_alive():
            # Closing a file another thread is reading waits for that read: never, for a stop.
            log.warning("the capture read is blocked; stopping without waiting for it")
        else:
            self.capture.close()
        self.uplink.close(timeout_s=max(0.1, deadline - time.monotonic() - 0.4))
        self._uplink_closed.set()
        self._results_thread.join(timeout=max(0.05, deadline - time.monotonic() - 0.3))
        self.speaker.close(timeout_s=max(0.05, deadline - time.monotonic() - 0.2))
        if self.button is not None:
            self.button.close()
        self.transcript.close()
        self.leds.close()

    @property
    def input_ended(self) -> bool:
        return self._input_ended.is_set()

    def wait_until_drained(self, timeout_s: float) -> bool:
        """For finite inputs (the demo, tests): wait for the end of input, every final and all speech."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._input_ended.is_set() and self.uplink.idle and self.results.empty() and self.speaker.idle:
                return True
            time.sleep(0.05)
        return False

    # -- threads -----------------------------------------------------------------------------

    def _pipeline_loop(self) -> None:
        """capture -> front end -> uplink. Never blocks on anything but the capture queue."""
        while not self._stop.is_set():
            frame = self.capture.read(timeout_s=FRAME_READ_TIMEOUT_S)
            if frame is None:
                if self.capture.state == "stopped":
                    break
                self.state.capture_stalled(self.capture.last_error)
                continue
            if self.counters.frames == 0 or self.capture.reopens:
                self.state.capture_ok()
            self.counters.frames += 1
            self.counters.last_frame_monotonic_s = time.monotonic()
            muted = self.state.muted or not self.speaker.mic_gate_open()
            self.counters.muted_frames += muted
            for event in self.frontend.process(frame, muted=muted):
                self._route_segment_event(event)
        for event in self.frontend.flush():
            self._route_segment_event(event)
        self._input_ended.set()

    def _route_segment_event(self, event) -> None:
        self.uplink.send(event)
        if isinstance(event, SpeechStarted):
            self.counters.utterances += 1
            self.state.speech_started()
            self.leds.show_direction(event.azimuth_deg)
            self.console.speech_started(event)
        elif isinstance(event, SpeechEnded):
            self.state.speech_ended()

    def _results_loop(self) -> None:
        """Uplink results -> outputs and state. Each output is quick or has its own queue."""
        while not (self._uplink_closed.is_set() and self.results.empty()):
            try:
                event = self.results.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(event, PartialResult):
                self.console.partial(event)
            elif isinstance(event, FinalResult):
                self.console.final(event)
                self.transcript.write(event)
                self.state.final_received()
            elif isinstance(event, SynthesizedSpeech):
                self.speaker.play(event)
            elif isinstance(event, LinkStatus):
                self.console.link_status(event)
                self.state.link_changed(event.connected)
            elif isinstance(event, UplinkError):
                self.console.error(event)
                self.state.uplink_error(event.message, event.fatal)


def configure_logging(level: str) -> None:
    """One line per record; systemd's journal adds the time itself."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")


def run_daemon(config: AgentConfig) -> int:
    """``parley run``: start, serve until SIGTERM/SIGINT, stop cleanly. Returns the exit status."""
    configure_logging(config.daemon.log_level)
    notifier = SystemdNotifier()
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    agent = Agent(config)
    agent.start()
    notifier.notify(READY="1", STATUS="listening")
    watchdog_s = notifier.watchdog_interval_s()
    tick_s = min(watchdog_s or 1.0, 1.0)
    last_status = 0.0
    while not stop_requested.wait(tick_s):
        now = time.monotonic()
        agent.state.tick(now)
        audio_flowing = now - agent.counters.last_frame_monotonic_s < config.daemon.audio_stall_s
        if watchdog_s and audio_flowing:
            notifier.notify(WATCHDOG="1")
        if now - last_status >= config.daemon.status_interval_s:
            last_status = now
            notifier.notify(STATUS=_status_line(agent))
        if agent.input_ended and agent.capture.state == "stopped":
            break
    notifier.notify(STOPPING="1", STATUS="stopping")
    agent.stop()
    notifier.close()
    return 0


def _status_line(agent: Agent) -> str:
    c = agent.counters
    return (f"{agent.state.current}; frames={c.frames} muted={c.muted_frames} utterances={c.utterances} "
            f"link={'up' if agent.uplink.connected else 'down'} overruns={agent.capture.overruns}")


def cycle_leds(config: AgentConfig, seconds_per_state: float) -> None:
    """``parley leds``: show every state in turn so an installer can check the wiring."""
    from agent.outputs.leds import cycle_led_states

    driver = LedDriver(make_led_backend(config.outputs.leds), config.outputs.leds)
    driver.start()
    try:
        cycle_led_states(driver, seconds_per_state)
    finally:
        driver.close()
