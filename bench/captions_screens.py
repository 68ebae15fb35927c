"""Screenshots of the captions page at 1920x1080 and 800x480, for looking at (not a measurement).

    python bench/captions_screens.py [--out bench/results]

The real HTTP output and device state machine on loopback, a real headless Chromium; the scenes are
a partial, a final, two languages side by side (with a conversation's party names) and the
mic-lost banner. Writes captions-<scene>-<width>x<height>.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.captions_page import CaptionsBox, set_viewport, start_chromium, wait_for  # noqa: E402

SIZES = ((1920, 1080), (800, 480))
SAID = (("Good morning everyone.", {"es": "Buenos días a todos.", "ca": "Bon dia a tothom."}),
        ("Where is the train station?", {"es": "¿Dónde está la estación de tren?", "ca": "On és l'estació de tren?"}),
        ("Please open the door for our guests.", {"es": "Por favor, abre la puerta a nuestros invitados.",
                                                  "ca": "Si us plau, obre la porta als nostres convidats."}))


def one_language(box: CaptionsBox, driver, partial: bool) -> None:
    for utterance_id, (source, translations) in enumerate(SAID[:2], 1):
        box.final(utterance_id, source, translations, azimuth_deg=60.0)
    if partial:
        box.speech(3)
        box.partial(3, "Please open the door", {"es": "Por favor, abre la puerta"})
    else:
        box.final(3, *SAID[2], azimuth_deg=60.0)


def conversation(box: CaptionsBox, driver) -> None:
    lines = (("Emma", "en-US", "Good morning. Where is the train station?", {"es": "Buenos días. ¿Dónde está la estación de tren?"}),
             ("Sofía", "es-ES", "Buenos días. La estación está muy cerca.", {"en": "Good morning. The station is very near."}),
             ("Emma", "en-US", "Thank you very much.", {"es": "Muchas gracias."}))
    for utterance_id, (party, language, source, translations) in enumerate(lines, 1):
        box.final(utterance_id, source, translations, azimuth_deg=None, party=party, language=language)


def mic_lost(box: CaptionsBox, driver) -> None:
    one_language(box, driver, partial=False)
    box.state.capture_stalled("capture device 'seeed-4mic' disappeared")


SCENES = {
    "partial": (("es",), lambda box, driver: one_language(box, driver, partial=True)),
    "final": (("es",), lambda box, driver: one_language(box, driver, partial=False)),
    "two-languages": (("en", "es"), conversation),
    "mic-lost": (("es", "ca"), mic_lost),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(Path(profile))
        try:
            for name, (langs, play) in SCENES.items():
                for width, height in SIZES:
                    box = CaptionsBox(spoken=None if name == "two-languages" else "en")
                    try:
                        set_viewport(driver, width, height)
                        driver.get(box.url(*langs))
                        wait_for(driver, "document.body.dataset.snapshots", what="the page")
                        play(box, driver)
                        wait_for(driver, "document.querySelectorAll('.row').length === 3", what="three rows")
                        time.sleep(0.3)
                        path = args.out / f"captions-{name}-{width}x{height}.png"
                        driver.save_screenshot(str(path))
                        print(path)
                    finally:
                        box.close()
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
