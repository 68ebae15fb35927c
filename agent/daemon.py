"""The agent daemon: wires capture -> front end -> uplink -> outputs, and nothing else.

Threads, each forced by a library or by hardware, with bounded queues between them:

    capture (PortAudio callback / WAV pacer) --frames--> pipeline thread
    pipeline thread: FrontEnd.process -> Uplink.send            (never blocks on the network)
      (with two or more parties a ConversationUplink routes each utterance to its language's Uplink)
    uplink thread(s) (websocket-client, one per party language) --ResultEvent queue--> results thread
    results thread: console, transcript, subtitles, speaker queue, state machine, HTTP queue; each output
      fails on its own (OutputHealth), and a final's spool entry goes once the transcript has it
    speaker thread, LED thread, HTTP thread (asyncio: captions page, /healthz, /metrics): inside their outputs
    (the speaker thread also writes the echo reference; the pipeline reads it: ``agent/duplex.py``)
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
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import numpy as np
from agent.audio import open_capture
from agent.conversation.config import frontend_for
from agent.conversation.uplinks import make_party_uplink
from agent.outputs.button import attach_button
from agent.config.schema import AgentConfig
from agent.debug_recorder import DebugRecorder
from agent.events import (
    FinalResult,
    LinkStatus,
    PartialResult,
    SegmentEvent,
    SpeechEnded,
    SpeechStarted,
    SynthesizedSpeech,
    UplinkError,
)
from agent.dsp.echo_reference import CaptureClock, ReferenceTimeline
from agent.duplex import Duplex
from agent.frontend import FrontEnd
from agent.selfcheck import run_self_check
from parley_common.frames import Frame
from agent.outputs.console import ConsoleOutput
from agent.outputs.health import OutputHealth, RetryingWriter
from agent.outputs.http import HttpOutput
from agent.outputs.http_guard import raise_fd_limit
from agent.outputs.http_metrics import thread_cpu_s
from agent.outputs.leds import LedDriver, make_led_backend
from agent.outputs.pins import make_pin_factory
from agent.outputs.speaker import Speaker
from agent.outputs.subtitles import SubtitleWriter
from agent.outputs.transcript import TranscriptWriter
from agent.session import UtteranceStamper, new_session_id
from parley_common.languages import base_language
from parley_common.logsetup import configure_logging
from parley_common.sdnotify import SystemdNotifier
from agent.queues import QUEUES, RESULT_QUEUE_SIZE
from agent.state import DeviceStateMachine

log = logging.getLogger("parley.daemon")

FRAME_READ_TIMEOUT_S = 0.2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: the unit's Restart=on-failure starts a fresh agent


@dataclass
class AgentCounters:
    """Written only by the pipeline thread; read by the main thread for status lines."""

    frames: int = 0
    muted_frames: int = 0
    utterances: int = 0
    last_frame_monotonic_s: float = 0.0
    finals: int = 0  # written by the results thread


class Agent:
    """One running agent: ``with Agent(config) as agent:`` (or ``start()`` then ``close()``).

    ``on_segment_event`` sees every segment event before it is routed (tests, benches).
    """

    def __init__(self, config: AgentConfig, *, on_segment_event: Callable[[SegmentEvent], None] | None = None,
                 room=None):
        """``room``: a simulated acoustic path (``agent.simulation_echo.EchoRoom``) between the speaker
        and the mics, for the demo, benches and tests; None on a real box."""
        self.config = config
        self._room = room
        self.geometry = config.geometry
        self.counters = AgentCounters()
        self.session = new_session_id()
        self._stamper = UtteranceStamper(self.session, config.capture.sample_rate_hz)
        self.results: queue.Queue = QUEUES["results"].make(RESULT_QUEUE_SIZE)
        self.state = DeviceStateMachine()
        self.health = OutputHealth(on_change=self.state.outputs_failing)
        self._on_segment_event = on_segment_event or (lambda event: None)
        self._stop = threading.Event()
        self._closed = False
        self._deadline_s = 0.0  # set by close(): the budgeted parts share what is left of it
        self._uplink_closed = threading.Event()
        self._input_ended = threading.Event()
        self.fault: str | None = None  # set once, by the thread that failed
        self._faulted = threading.Event()
        self._pipeline = threading.Thread(target=self._until_fault(self._pipeline_loop), name="pipeline", daemon=True)
        self._results_thread = threading.Thread(target=self._until_fault(self._results_loop), name="results", daemon=True)
        self._threads = [self._pipeline, self._results_thread]
        # Every part in one ExitStack, like AIY's board.py: what a failing part leaves claimed (GPIO,
        # devices) is released, and close() unwinds the same stack. Built in the reverse of the order
        # a stop needs: input first, then the uplink's finals, the results that write them, outputs.
        self._parts: list = []  # in start-up order
        with ExitStack() as claimed:
            pins = make_pin_factory(config.outputs.leds.backend)
            leds = LedDriver(make_led_backend(config.outputs.leds, pins), config.outputs.leds, self.health)
            self.leds = self._claim(claimed, leds)
            self.state.subscribe(self.leds.show_state)
            self.http = self._claim(claimed, HttpOutput(config.outputs.http, self.status, config.daemon.audio_stall_s,
                                                        *caption_languages(config)))
            self.state.subscribe(self.http.device_state)
            subtitles = SubtitleWriter(config.outputs.subtitles, config.capture.sample_rate_hz)
            self.subtitles = self._claim(claimed, subtitles, close=lambda: self.health.run("subtitles", subtitles.close))
            self.recorder = self._claim(claimed, DebugRecorder.from_config(config.debug))  # None unless record_dir
            transcript = TranscriptWriter(config.outputs.transcript)
            self.transcript = self._claim(claimed, transcript,
                                          close=lambda: self.health.run("transcript", transcript.close))
            # the durable record: a final is acknowledged (its spool entry removed) only once written
            self.durable = RetryingWriter("transcript", self.transcript.write, self.health,
                                          on_written=lambda final: self.uplink.acknowledge(final.utterance_id))
            claimed.callback(self._flush_durable)
            self.console = ConsoleOutput(config.outputs.console)
            self.button = self._claim(claimed, attach_button(config.outputs.button, self.state, pins))
            self.speaker = self._claim(claimed, self._speaker_and_duplex(config, room),
                                       close=lambda: self.speaker.close(timeout_s=self._left_s(0.2)))
            claimed.callback(self._join_results)
            self.uplink = self._claim(claimed, make_party_uplink(
                config.uplink, config.conversation, self.results, direction=lambda: self.frontend.azimuth_deg),
                close=self._close_uplink)
            self.frontend = FrontEnd(frontend_for(config.frontend, config.conversation), self.geometry,
                                     config.capture.sample_rate_hz, first_utterance_id=self.uplink.next_utterance_id)
            self.duplex.canceller = self.frontend.echo_canceller
            capture = open_capture(config.capture, self.geometry)
            self.capture = self._claim(claimed, room.wrap_capture(capture) if room is not None else capture,
                                       close=self._close_capture)
            self._claimed = claimed.pop_all()

    def _claim(self, stack: ExitStack, part, close: Callable[[], object] | None = None):
        """Register ``part`` (None: not configured) to be started in order and closed in reverse."""
        if part is not None:
            self._parts.append(part)
            stack.callback(close or part.close)
        return part

    def _speaker_and_duplex(self, config: AgentConfig, room) -> Speaker:
        """The speaker, the echo reference it writes on the capture clock, and the duplex decision."""
        rate_hz = config.capture.sample_rate_hz
        self.capture_clock = CaptureClock(rate_hz)
        self.reference = ReferenceTimeline(self.capture_clock)  # the self-check needs it even with cancellation off
        self._talker_speaking = False  # written by the pipeline, read by the speaker's hold rule
        self._in_utterance = False
        self._channel_fix: list[int] | None = None  # the self-check's repair of a rotated channel order
        self.self_check = None
        self.hardware_problems: list[str] = []
        speaker = Speaker(config.outputs.speaker, on_playback_started=self.state.speaker_started,
                          on_playback_finished=self.state.speaker_finished,
                          sink=room.speaker_sink(config.outputs.speaker) if room is not None else None,
                          talker_speaking=lambda: self._talker_speaking, reference=self.reference, capture_rate_hz=rate_hz,
                          health=self.health)
        self.duplex = Duplex(config.frontend.echo_cancellation, config.frontend.echo, config.outputs.speaker,
                             self.reference, speaker, rate_hz, rate_hz * config.capture.frame_ms // 1000,
                             on_change=self._duplex_changed)  # its canceller is the front end's, set once that exists
        return speaker

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Agent":
        try:
            self.state.starting()
            log.info("session %s", self.session)
            for part in self._parts:
                if hasattr(part, "start"):
                    part.start()
            for thread in self._threads:
                thread.start()
        except BaseException:
            self.close()
            raise
        self.state.started()
        return self

    def close(self, timeout_s: float | None = None) -> None:
        """Stop within ``timeout_s``: end the open utterance, wait for the finals that are due (what
        is still owed stays in the spool), write them, close the socket, LEDs off.

        Idempotent, and safe after a start that failed half-way.
        """
        if self._closed:
            return
        self._closed = True
        self.speaker.stop_playback()  # a sentence still playing must not eat the shutdown budget
        budget_s = timeout_s if timeout_s is not None else self.config.daemon.shutdown_timeout_s
        self._deadline_s = time.monotonic() + budget_s
        self._stop.set()
        if self._pipeline.is_alive():
            self._pipeline.join(timeout=min(0.5, budget_s / 4))  # it ends the open utterance on its way out
        self._claimed.close()

    def _left_s(self, margin_s: float) -> float:
        return max(0.05, self._deadline_s - time.monotonic() - margin_s)

    def _close_capture(self) -> None:
        if self._pipeline.is_alive():
            # Closing a file another thread is reading waits for that read: never, for a stop.
            log.warning("the capture read is blocked; stopping without waiting for it")
        else:
            self.capture.close()

    def _close_uplink(self) -> None:
        self.uplink.close(timeout_s=max(0.1, self._left_s(0.4)))
        self._uplink_closed.set()

    def _join_results(self) -> None:
        if self._results_thread.is_alive():
            self._results_thread.join(timeout=self._left_s(0.3))

    def _flush_durable(self) -> None:
        if not self._results_thread.is_alive():
            self.durable.flush()  # a last try; what is still not written is in the spool for the restart

    def __enter__(self) -> "Agent":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def input_ended(self) -> bool:
        return self._input_ended.is_set()

    def wait_until_drained(self, timeout_s: float) -> bool:
        """For finite inputs (the demo, tests): wait for the end of input, every final and all speech.
        False on a timeout, and at once on a fault (nothing more will come)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._faulted.is_set():
            if self._input_ended.is_set() and self.uplink.idle and self.results.empty() and self.speaker.idle:
                return True
            time.sleep(0.05)
        return False

    def status(self) -> dict:
        """A read-only snapshot for /healthz and /metrics; each counter has one writer thread."""
        c, last_frame_s = self.counters, self.counters.last_frame_monotonic_s
        return {"capture_state": self.capture.state, "overruns": self.capture.overruns, "frames": c.frames,
                "last_frame_age_s": time.monotonic() - last_frame_s if last_frame_s else None,
                "utterances": c.utterances, "finals": c.finals, "link_up": int(self.uplink.connected),
                "reconnects": max(0, self.uplink.connects - 1), "dropped_utterances": self.uplink.dropped_utterances,
                "outbox_depth": self.uplink.pending_utterances, "pipeline_cpu_s": thread_cpu_s(self._threads[0].native_id),
                "output_problems": self.health.problems(),
                "barge_ins": self.speaker.barge_ins, **self.duplex.status(), "hardware_problems": self.hardware_problems,
                "self_check": self.self_check.as_dict() if self.self_check is not None else None, "fault": self.fault}

    def tick(self, now: float) -> None:
        """The main thread's second: timeouts in the state machine, the spool's own verdict."""
        self.state.tick(now)
        self.health.report("spool", self.uplink.spool_problem)

    # -- threads -----------------------------------------------------------------------------

    def _until_fault(self, loop: Callable[[], None]) -> Callable[[], None]:
        """``loop`` as a thread's target. An exception it did not expect is a bug, and the thread is
        gone: the agent reports a fault and stops (``run_daemon`` exits for systemd to restart it)
        rather than live on as a box that looks alive and hears nothing."""
        def run() -> None:
            try:
                loop()
            except Exception as exc:
                name = threading.current_thread().name
                self.fault = f"internal error in the {name} thread: {type(exc).__name__}: {exc} ({_raised_at(exc)})"
                log.critical("%s; the agent stops so that it can be restarted", self.fault)
                log.debug("the %s thread's traceback", name, exc_info=True)
                self.state.internal_error(self.fault)
                self._faulted.set()
        return run

    def _pipeline_loop(self) -> None:
        """capture -> front end -> uplink. Never blocks on anything but the capture queue."""
        if self._self_check_wanted():
            for frame, played in self._self_check():  # then what was heard meanwhile, as any other audio
                self._process_frame(frame, gated=played)
        while not self._stop.is_set():
            frame = self.capture.read(timeout_s=FRAME_READ_TIMEOUT_S)
            if frame is None:
                if self.capture.state == "stopped":
                    break
                self.state.capture_stalled(self.capture.last_error)
                continue
            self.capture_clock.observe(frame.end_sample, time.monotonic())
            self._process_frame(frame)
        for event in self.frontend.flush():
            self._route_segment_event(event)
        self._input_ended.set()

    def _self_check_wanted(self) -> bool:
        """Only where the speaker can reach the mics: a real device, or the simulated room."""
        realtime = self.config.capture.source == "pyaudio" or self.config.capture.wav.realtime
        audible = self.config.outputs.speaker.backend == "pyaudio" or self._room is not None
        present = self.speaker.sink is not None  # no output device yet: waited for, nothing to play the chirp on
        return self.config.self_check.at_start and audible and realtime and present

    def _self_check(self) -> list[tuple[Frame, bool]]:
        """The chirp: the echo delay, the channel order, dead mics. Returns the frames heard, each
        with whether the box was playing then (they go through the front end afterwards)."""
        result, frames = run_self_check(self.config.self_check, self.capture, self.speaker, self.reference,
                                        self.capture_clock, self.geometry, self.config.capture.sample_rate_hz, self._stop)
        if self._stop.is_set():
            return []  # stopped during the check: what it heard was the chirp
        self.self_check = result
        if result.delay_ms is not None:
            self.duplex.set_delay(result.delay_ms)
        problems = list(result.problems)
        if result.channel_fix is not None and self.config.self_check.repair_channel_order:
            self._channel_fix = result.channel_fix
            log.warning("self-check: channels re-mapped %s -> %s", list(range(len(result.channel_fix))), result.channel_fix)
            problems = [p for p in problems if "rotated" not in p and "swapped" not in p]
        self.hardware_problems = problems
        if problems:
            self.state.hardware_problem("; ".join(problems))
        fixed = [self._fixed(frame) for frame in frames]
        if result.delay_ms is not None:
            self.duplex.train(fixed)
        return [(frame, bool(np.any(self.reference.read(frame.start_sample, frame.n_samples)[0]))) for frame in frames]

    def _fixed(self, frame: Frame) -> Frame:
        if self._channel_fix is None:
            return frame
        return Frame(np.ascontiguousarray(frame.samples[:, self._channel_fix]), frame.start_sample, frame.sample_rate_hz)

    def _process_frame(self, frame: Frame, gated: bool | None = None) -> None:
        """One frame: channel fix, echo reference, gate, front end, barge-in, routing."""
        frame = self._fixed(frame)
        if self.counters.frames == 0 or self.capture.reopens:
            self.state.capture_ok()
        self.counters.frames += 1
        self.counters.last_frame_monotonic_s = time.monotonic()
        reference = self.duplex.reference_for(frame)
        gate = self.duplex.gate_closed() if gated is None else gated and not self.duplex.full_duplex
        muted = self.state.muted or gate
        self.counters.muted_frames += muted
        events = self.frontend.process(frame, muted=muted, reference=reference)
        self.duplex.observe(frame, self.frontend.last_cancelled, self.frontend.is_speech)
        self._talker_speaking = self.frontend.is_speech or self._in_utterance  # read by the speaker's hold rule
        if self.recorder is not None:
            self.recorder.frame(frame, self.frontend.last_output, reference)
        for event in events:
            self._route_segment_event(self._stamper.stamp(event, frame.end_sample))

    def _duplex_changed(self, mode: str, reason: str) -> None:
        log.info("%s duplex%s", mode, f": {reason}" if reason else "")

    def _route_segment_event(self, event: SegmentEvent) -> None:
        self._on_segment_event(event)
        self.uplink.send(event)
        if self.recorder is not None:
            self.recorder.segment(event)
        if isinstance(event, (SpeechStarted, SpeechEnded)):
            self.http.publish(event)
            self._in_utterance = isinstance(event, SpeechStarted)
        if isinstance(event, SpeechStarted):
            self.counters.utterances += 1
            self.state.speech_started()
            self.leds.show_direction(event.azimuth_deg)
            self.console.speech_started(event)
        elif isinstance(event, SpeechEnded):
            self.state.speech_ended()

    def _results_loop(self) -> None:
        """Uplink results -> outputs and state. Each output is quick or has its own queue, and fails
        on its own: this thread must outlive any of them."""
        while not (self._uplink_closed.is_set() and self.results.empty()):
            try:
                event = self.results.get(timeout=0.2)
            except queue.Empty:
                self.durable.tick()  # a transcript backlog is retried between finals too
                continue
            try:
                self._deliver(event)
            except Exception:  # a bug here must not end every later final with it
                log.exception("results: %s skipped", type(event).__name__)

    def _deliver(self, event) -> None:
        run = self.health.run
        run("http", self.http.publish, event)
        if isinstance(event, PartialResult):
            run("console", self.console.partial, event)
        elif isinstance(event, FinalResult):
            run("console", self.console.final, event)
            self.counters.finals += 1
            self.durable.put(event)
            run("subtitles", self.subtitles.write, event)
            self.state.final_received()
        elif isinstance(event, SynthesizedSpeech):
            self.speaker.play(event)
        elif isinstance(event, LinkStatus):
            run("console", self.console.link_status, event)
            self.state.link_changed(event.connected)
        elif isinstance(event, UplinkError):
            run("console", self.console.error, event)
            self.state.uplink_error(event.message, event.fatal)


def caption_languages(config: AgentConfig) -> tuple[tuple[str, ...], str | None]:
    """(the captions page's columns this box fills, the language of a caption that names none)."""
    parties = config.conversation.parties
    if parties:
        reads = [lang for party in parties for lang in party.reads]
        return tuple(dict.fromkeys(["source", *reads])), None
    spoken = base_language(config.uplink.from_language)
    return tuple(dict.fromkeys(["source", spoken, *config.uplink.to_languages])), spoken


def run_daemon(config: AgentConfig) -> int:
    """``parley run``: start, serve until SIGTERM/SIGINT, stop cleanly. Returns the exit status."""
    configure_logging(config.daemon.log_level)
    raise_fd_limit()  # the HTTP server's connection cap is taken inside this budget
    notifier = SystemdNotifier()
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    agent = Agent(config).start()
    notifier.notify(READY="1", STATUS="listening")
    watchdog_s = notifier.watchdog_interval_s()
    tick_s = min(watchdog_s or 1.0, 1.0)
    last_status = 0.0
    while not stop_requested.wait(tick_s) and agent.fault is None:
        now = time.monotonic()
        agent.tick(now)
        audio_flowing = now - agent.counters.last_frame_monotonic_s < config.daemon.audio_stall_s
        audio_flowing |= agent.capture.state == "reopening"  # waiting for a mic (mic_lost) is alive, not hung
        if watchdog_s and audio_flowing:
            notifier.notify(WATCHDOG="1")
        if now - last_status >= config.daemon.status_interval_s:
            last_status = now
            notifier.notify(STATUS=_status_line(agent))
        if agent.input_ended and agent.capture.state == "stopped":
            break
    notifier.notify(STOPPING="1", STATUS=agent.fault or "stopping")
    agent.close()
    notifier.close()
    return EXIT_INTERNAL_ERROR if agent.fault else 0


def _raised_at(exc: BaseException) -> str:
    """Where ``exc`` was raised, as file:line in function: enough for a bug report in one log line."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return "unknown place"
    code = frame.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno} in {code.co_name}"


def _status_line(agent: Agent) -> str:
    c = agent.counters
    return (f"{agent.state.current}; frames={c.frames} muted={c.muted_frames} utterances={c.utterances} "
            f"link={'up' if agent.uplink.connected else 'down'} overruns={agent.capture.overruns}")


def cycle_leds(config: AgentConfig, seconds_per_state: float) -> None:
    """``parley leds``: show every state in turn so an installer can check the wiring."""
    from agent.outputs.leds import cycle_led_states

    pins = make_pin_factory(config.outputs.leds.backend)
    driver = LedDriver(make_led_backend(config.outputs.leds, pins), config.outputs.leds)
    driver.start()
    try:
        cycle_led_states(driver, seconds_per_state)
    finally:
        driver.close()
