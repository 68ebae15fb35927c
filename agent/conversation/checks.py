"""Config checks of the ``conversation`` section, each naming the file line of the key at fault.

``conversation_issues`` runs at load (seats, names, who can talk to whom), and so does
``uplink_language_issues`` (the one-language setup's codes, by the same BCP-47 rule);
``offered_language_issues`` asks a running gateway's ``/languages`` which languages it recognizes
and translates, so a language it lacks (a party's, or ``uplink.from_language``/``to_languages``)
is reported before start rather than as an HTTP 400 retried forever or an empty result per utterance.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from agent.conversation.config import ConversationConfig
from agent.conversation.router import Seat
from parley_common.languages import base_language

log = logging.getLogger("parley.conversation")

BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
LANGUAGES_TIMEOUT_S = 3.0


def _seat_text(seat: Seat) -> str:
    return f"{seat.from_deg:g}°–{seat.to_deg:g}°"


def conversation_issues(conversation: ConversationConfig, spatial: bool, lines) -> list:
    issues = []
    parties = conversation.parties
    key = "conversation.parties"
    names = [p.name for p in parties]
    for i, party in enumerate(parties):
        where = f"{key}[{i}]"
        if names.index(party.name) != i:
            issues.append(lines.issue(f"{where}.name", f"party name {party.name!r} is used twice; names must differ"))
        for lang_key, code in [("language", party.language)] + [("hears", h) for h in party.hears]:
            if not BCP47.match(code):
                issues.append(lines.issue(f"{where}.{lang_key}", _not_a_tag(code)))
        if party.seated and party.from_deg == party.to_deg:
            issues.append(lines.issue(f"{where}.from_deg", f"the seat {party.from_deg:g}°–{party.to_deg:g}° is empty; "
                                                           "allowed: different angles (0 -> 360 is the whole circle)"))
    # seated: both angles set (PartyConfig allows both or neither)
    seats = [(i, Seat(p.name, p.from_deg, p.to_deg)) for i, p in enumerate(parties)
             if p.from_deg is not None and p.to_deg is not None and p.from_deg != p.to_deg]
    for n, (i, seat) in enumerate(seats):
        for j, other in seats[:n]:
            if seat.overlaps(other):
                issues.append(lines.issue(f"{key}[{i}].from_deg", (
                    f"the seat {_seat_text(seat)} of {seat.party!r} overlaps the seat {_seat_text(other)} of "
                    f"{other.party!r} ({key}[{j}]); seats must not overlap (sharing an edge is fine)")))
    default = conversation.default_party
    if default is not None and default not in names:
        allowed = ", ".join(names) if names else "none (no parties are configured)"
        issues.append(lines.issue("conversation.default_party", f"no party is named {default!r}; allowed: {allowed}"))
    if not conversation.multi_party:
        return issues
    if not spatial and conversation.route_by != "language":
        issues.append(lines.issue("conversation.parties", (
            f"route_by {conversation.route_by} needs a multi-mic array to tell seats apart, and this array has one "
            "mic; allowed: one party, route_by language, or an array profile with several mics")))
    for i, party in enumerate(parties):
        if not conversation.targets(party):
            issues.append(lines.issue(f"{key}[{i}].language", (
                f"{party.name!r} has nobody to talk to: every other party reads only {party.base_language!r}, "
                f"the language {party.name!r} speaks; allowed: parties that read another language")))
        if not party.seated and party.name != default and conversation.route_by == "direction":
            issues.append(lines.issue(f"{key}[{i}]", (
                f"{party.name!r} has no seat (from_deg/to_deg) and is not conversation.default_party, so no "
                "utterance would ever be routed to them")))
    return issues


def _not_a_tag(code: str) -> str:
    return f"{code!r} is not a BCP-47 language tag; allowed: e.g. en-US, es-ES, es"


def uplink_language_issues(uplink, conversation: ConversationConfig, lines) -> list:
    """The one-language setup's own codes, checked like a party's: the uplink's ``from_language``
    unless a party sets it, its ``to_languages`` unless the parties do (two or more)."""
    codes = [(f"uplink.identify_languages[{i}]", code) for i, code in enumerate(uplink.identify_languages)]
    if not conversation.parties and not uplink.identify_languages:
        codes.append(("uplink.from_language", uplink.from_language))
    if not conversation.multi_party:
        codes += [(f"uplink.to_languages[{i}]", code) for i, code in enumerate(uplink.to_languages)]
    return [lines.issue(key, _not_a_tag(code)) for key, code in codes if not BCP47.match(code)]


def route_issues(uplink, conversation: ConversationConfig, lines) -> list:
    """What the chosen routing needs from the service (the uplink's own rule for language identification)."""
    if not conversation.multi_party or conversation.route_by == "direction":
        return []
    if conversation.route_by == "both" and uplink.backend != "gateway":
        return [lines.issue("conversation.route_by", (
            f"route_by both needs the gateway: it weighs the seat's language against what it hears, and "
            f"{uplink.backend} takes no expected language; allowed here: direction, language"))]
    problem = uplink.language_identification_problem()
    if problem:
        key, service = ("uplink.endpoint_version", "Azure") if uplink.backend == "azure" else ("conversation.route_by", "the service")
        return [lines.issue(key, (
            f"route_by {conversation.route_by} asks {service} to identify each utterance's language, and "
            f"needs the Speech USP v2 protocol: {problem}"))]
    return []


def languages_url(service_url: str) -> str:
    parts = urlsplit(service_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/languages", "api-version=1.0&scope=speech,text", ""))


def fetch_offered_languages(service_url: str, timeout_s: float = LANGUAGES_TIMEOUT_S) -> dict | None:
    """The gateway's ``/languages`` document, or None (with a log line) when it cannot be asked."""
    url = languages_url(service_url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        log.warning("could not ask %s which languages it offers (%s); the languages are not checked against it", url, exc)
        return None


def offered_language_issues(uplink, conversation: ConversationConfig, lines, fetch=fetch_offered_languages) -> list:
    """Spoken languages the gateway does not recognize, and listener languages it cannot translate
    into: the parties', or the one-language setup's ``from_language`` and ``to_languages``."""
    talkers = _talkers(uplink, conversation)
    if not talkers or uplink.backend != "gateway":
        return []
    from agent.uplink.translator_v1 import GATEWAY_DEFAULT_URL

    document = fetch(uplink.url or GATEWAY_DEFAULT_URL)
    if document is None:
        return []
    speech = document.get("speech", {})
    by_base = {entry.get("language", base_language(code)): (code, entry) for code, entry in speech.items()}
    offered = ", ".join(speech) or "none"
    issues = []
    for key, language, targets_key, targets, who in talkers:
        spoken = base_language(language)
        if spoken not in by_base:
            issues.append(lines.issue(key, f"the gateway does not recognize {language!r}; it recognizes: {offered}"))
            continue
        translations = by_base[spoken][1].get("translations", [])
        missing = [t for t in targets if BCP47.match(t) and base_language(t) not in translations]
        if missing:
            what = f"what {who!r} says ({spoken})" if who else f"{language!r}"
            whose = " (what the other parties read)" if who else ""
            issues.append(lines.issue(targets_key, (
                f"the gateway cannot translate {what} into {', '.join(missing)}{whose}; "
                f"from {spoken} it offers: {', '.join(translations) or 'nothing'}")))
    return issues


def _talkers(uplink, conversation: ConversationConfig) -> list[tuple]:
    """(key, language, targets' key, targets, party name) for every language someone speaks."""
    if uplink.identify_languages:
        return []
    if not conversation.parties:
        return [("uplink.from_language", uplink.from_language, "uplink.to_languages", uplink.to_languages, None)]
    if not conversation.multi_party:
        return [("conversation.parties[0].language", conversation.parties[0].language, "uplink.to_languages",
                 uplink.to_languages, None)]
    return [(f"conversation.parties[{i}].language", party.language, f"conversation.parties[{i}].language",
             conversation.targets(party), party.name) for i, party in enumerate(conversation.parties)
            if BCP47.match(party.language)]
