"""The captions page's behaviour in a real headless Chromium, served by the real HTTP output and fed
by the real device state machine: a banner for every non-normal state, the not-offered note, the
partial turning final in place, rows aligned by utterance, language names, kiosk-sized type."""

from __future__ import annotations

import pytest

from tests.support.captions_page import CaptionsBox, set_viewport, start_chromium, wait_for

ROW = 'document.querySelector(\'.row[data-utterance="{}"]\')'


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def box():
    box = CaptionsBox()
    yield box
    box.close()


def open_page(browser, box, *langs):
    set_viewport(browser, 1280, 720)
    browser.get(box.url(*langs))
    wait_for(browser, "document.getElementById('banner').dataset.state === ''", what="the page to connect")


def banner(browser) -> tuple[str, str]:
    return tuple(browser.execute_script("const b = document.getElementById('banner'); return [b.dataset.state, b.textContent]"))


def test_a_banner_for_the_mic_lost_and_every_other_state_that_is_not_normal(browser, box):
    open_page(browser, box, "es")
    box.state.capture_stalled("capture device 'seeed-4mic' disappeared")  # what the capture reports
    wait_for(browser, "document.getElementById('banner').dataset.state === 'mic_lost'", what="the mic-lost banner")
    state, text = banner(browser)
    assert "Microphone" in text and browser.find_element("id", "banner").is_displayed()
    box.state.capture_ok()
    wait_for(browser, "document.getElementById('banner').dataset.state === ''", what="the banner to clear")
    for fact, undo, expected in ((lambda: box.state.set_muted(True), lambda: box.state.set_muted(False), "muted"),
                                 (lambda: box.state.link_changed(False), lambda: box.state.link_changed(True), "offline"),
                                 (lambda: box.state.uplink_error("key refused", True), lambda: box.state.link_changed(True),
                                  "error")):
        fact()
        wait_for(browser, f"document.getElementById('banner').dataset.state === '{expected}'", what=expected)
        assert banner(browser)[1]
        undo()
        wait_for(browser, "document.getElementById('banner').dataset.state === ''", what=f"{expected} to clear")
    # the normal states show none
    box.state.speech_started()
    box.state.speaker_started()
    assert banner(browser)[0] == ""


def test_a_language_not_offered_gets_a_note_and_headers_name_the_languages(browser, box):
    open_page(browser, box, "es", "de")
    note = wait_for(browser, "document.querySelector('.lang[data-lang=\"de\"] .note')?.textContent", what="the note")
    assert "Not offered" in note and "Español" in note and "Català" in note
    headers = browser.execute_script("return [...document.querySelectorAll('.lang')].map(h => h.firstChild.textContent)")
    assert headers == ["Español", "Deutsch"]
    assert browser.execute_script("return document.querySelector('.lang[data-lang=\"es\"] .note')") is None


def test_the_partial_turns_final_in_place(browser, box):
    open_page(browser, box, "es", "source")
    box.final(1, "good morning", {"es": "buenos días", "ca": "bon dia"})
    box.speech(2)
    box.partial(2, "where is", {"es": "dónde está"})
    wait_for(browser, ROW.format(2) + "?.classList.contains('partial')", what="the partial")
    browser.execute_script(f"window.__partial = {ROW.format(2)};"
                           f"window.__top = window.__partial.getBoundingClientRect().top;")
    box.partial(2, "where is the station", {"es": "dónde está la estación"})
    box.final(2, "where is the station", {"es": "dónde está la estación", "ca": "on és l'estació"})
    wait_for(browser, ROW.format(2) + "?.classList.contains('final')", what="the final")
    same, moved_px, rows = browser.execute_script(
        f"const row = {ROW.format(2)}; return [row === window.__partial,"
        " Math.abs(row.getBoundingClientRect().top - window.__top), document.querySelectorAll('.row').length]")
    assert same and rows == 2
    assert moved_px < 2, f"the row moved {moved_px} px when it became final"


def test_rows_are_aligned_by_utterance_across_columns(browser, box):
    open_page(browser, box, "es", "source")
    long_es = ("Buenos días a todos y bienvenidos a la reunión anual de la asociación, donde hablaremos del "
               "presupuesto y de los nuevos proyectos")
    box.final(1, "Good morning everyone.", {"es": long_es})
    box.final(3, "Thank you.", {"es": "Gracias."})
    box.final(2, "Where is the station?", {"es": "¿Dónde está la estación?"})  # late: goes between 1 and 3
    wait_for(browser, "document.querySelectorAll('.row.final').length === 3", what="three rows")
    cells = browser.execute_script("""
        return [...document.querySelectorAll('.row')].map(row => [row.dataset.utterance,
            ...[...row.querySelectorAll('.cell')].map(c => [c.dataset.lang, Math.round(c.getBoundingClientRect().top)])])""")
    assert [row[0] for row in cells] == ["1", "2", "3"]
    for _, (_, es_top), (_, source_top) in cells:
        assert es_top == source_top  # Spanish and the original of one utterance start on one line


def test_type_is_readable_on_an_800x480_kiosk_and_rows_are_never_cut(browser, box):
    set_viewport(browser, 800, 480)
    browser.get(box.url("es", "source"))
    wait_for(browser, "document.getElementById('banner').dataset.state === ''", what="the page")
    for utterance_id in range(1, 13):
        box.final(utterance_id, f"sentence number {utterance_id} is said", {"es": f"la frase número {utterance_id}"})
    wait_for(browser, ROW.format(12), what="the last row")
    sizes = browser.execute_script("""
        const px = el => parseFloat(getComputedStyle(el).fontSize);
        return [px(document.querySelector('.lang')), px(document.querySelector('.row .cell')),
                px(document.querySelector('.row .who'))]""")
    assert min(sizes) >= 16, sizes
    head_bottom, first_visible_top = browser.execute_script("""
        const shown = [...document.querySelectorAll('.row')].filter(r => !r.hidden);
        return [document.getElementById('head').getBoundingClientRect().bottom, shown[0].getBoundingClientRect().top]""")
    assert first_visible_top >= head_bottom  # the oldest line shown is whole, not cut under the header
