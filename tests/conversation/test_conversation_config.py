"""The conversation section: one party is the box of before; seats, names and languages are
checked with file:line, all at once; the gateway's /languages names what it lacks."""

from __future__ import annotations

import textwrap

import pytest

from agent.config.schema import AgentConfig, check_environment, load_agent_config
from agent.conversation.config import identifying_uplink_config, uplink_config_for
from parley_common.typedyaml import ConfigError

TWO = """\
conversation:
  parties:
    - name: Ann
      language: en-US
      from_deg: 0
      to_deg: 120
    - name: Bea
      language: es-ES
      voice: es-espeak
      from_deg: 180
      to_deg: 300
"""


def load(tmp_path, text: str):
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(text))
    return load_agent_config(path), path


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(issue) for issue in caught.value.issues]


def test_two_parties_each_get_their_language_and_the_others_as_targets(tmp_path):
    config, _ = load(tmp_path, TWO)
    conversation = config.conversation
    ann, bea = conversation.parties
    en = uplink_config_for(config.uplink, conversation, ann)
    es = uplink_config_for(config.uplink, conversation, bea)
    assert (en.from_language, en.to_languages, en.voice) == ("en-US", ("es",), "es-espeak")
    assert (es.from_language, es.to_languages, es.voice) == ("es-ES", ("en",), None)


def test_no_party_and_one_party_are_the_single_language_box(tmp_path):
    assert load_agent_config(None).conversation.parties == ()
    config, _ = load(tmp_path, """\
        uplink:
          to_languages: [es, ca]
        conversation:
          parties:
            - name: Host
              language: fr-FR
        """)
    one = uplink_config_for(config.uplink, config.conversation, config.conversation.parties[0])
    assert one.from_language == "fr-FR" and one.to_languages == ("es", "ca")
    assert config.uplink == AgentConfig().uplink  # the section itself is untouched


def test_overlapping_seats_unknown_default_and_nobody_to_talk_to_are_reported_with_lines(tmp_path):
    found = problems(tmp_path, """\
        conversation:
          default_party: Zed
          parties:
            - name: Ann
              language: en-US
              from_deg: 300
              to_deg: 60
            - name: Bob
              language: en-GB
              from_deg: 30
              to_deg: 90
            - name: Ann
              language: english
              hears: [en]
        """)
    text = "\n".join(found)
    assert ":2: conversation.default_party: no party is named 'Zed'; allowed: Ann, Bob, Ann" in text
    assert ":10: conversation.parties[1].from_deg: the seat 30°–90° of 'Bob' overlaps the seat 300°–60° of 'Ann'" in text
    assert ":5: conversation.parties[0].language: 'Ann' has nobody to talk to" in text
    assert ":12: conversation.parties[2].name: party name 'Ann' is used twice" in text
    assert ":13: conversation.parties[2].language: 'english' is not a BCP-47 language tag" in text
    assert ":12: conversation.parties[2]: 'Ann' has no seat" in text


def test_half_a_seat_and_a_mono_array_are_refused(tmp_path):
    found = problems(tmp_path, """\
        array:
          profile: mono
        conversation:
          parties:
            - name: Ann
              language: en-US
              from_deg: 10
            - name: Bea
              language: es-ES
              from_deg: 180
              to_deg: 300
        """)
    text = "\n".join(found)
    assert ":5: conversation.parties[0]: party 'Ann': a seat needs both from_deg and to_deg" in text


def test_a_mono_array_cannot_tell_seats_apart(tmp_path):
    found = problems(tmp_path, "array:\n  profile: mono\n" + TWO)
    assert any("conversation.parties: route_by direction needs a multi-mic array" in p for p in found)


def test_route_by_language_is_one_identifying_connection_for_every_party(tmp_path):
    config, _ = load(tmp_path, TWO.replace("conversation:\n", "conversation:\n  route_by: language\n"))
    one = identifying_uplink_config(config.uplink, config.conversation)
    assert one.identify_languages == ("en-US", "es-ES") and one.to_languages == ("en", "es")
    assert one.voices == {"es": "es-espeak"}  # Bea's voice speaks what she hears
    # no seats needed, and a single mic will do: the language, not the direction, picks the party
    unseated = "array:\n  profile: mono\nconversation:\n  route_by: language\n  parties:\n" \
               "    - {name: Ann, language: en-US}\n    - {name: Bea, language: es-ES}\n"
    assert load(tmp_path, unseated)[0].conversation.route_by == "language"


def test_routing_a_service_cannot_do_is_refused_with_what_it_can(tmp_path):
    both_on_azure = "uplink:\n  backend: azure\n  region: westeurope\n  endpoint_version: v2\n" + \
        TWO.replace("conversation:\n", "conversation:\n  route_by: both\n")
    assert any(":6: conversation.route_by: route_by both needs the gateway" in p and "allowed here: direction, language" in p
               for p in problems(tmp_path, both_on_azure))
    language_on_v1 = both_on_azure.replace("route_by: both", "route_by: language").replace("  endpoint_version: v2\n", "")
    assert any("uplink.endpoint_version: route_by language asks Azure" in p for p in problems(tmp_path, language_on_v1))
    # an endpoint on the v1 path is the same refusal, at load rather than as a crash at start
    v1_endpoint = language_on_v1.replace("  region: westeurope\n",
                                         "  url: wss://westeurope.s2s.speech.microsoft.com/speech/translation/cognitiveservices/v1\n")
    assert any("route_by language asks Azure" in p and "v2 endpoint only" in p for p in problems(tmp_path, v1_endpoint))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "uplink:\n  backend: translator-v1\n  url: ws://h\n  identify_languages: [en-US, es-ES]\n")
    assert "identify_languages needs the Speech USP v2 protocol" in str(caught.value)


def test_languages_the_gateway_does_not_offer_are_named_at_start(tmp_path, gateway):
    config, path = load(tmp_path, f"""\
        uplink:
          url: {gateway.base_url}
        conversation:
          parties:
            - name: Ann
              language: en-US
              hears: [en, xx]
              from_deg: 0
              to_deg: 120
            - name: Bea
              language: es-ES
              from_deg: 180
              to_deg: 300
            - name: Kai
              language: ja-JP
              from_deg: 130
              to_deg: 170
        """)
    with pytest.raises(ConfigError) as caught:
        check_environment(config, path)
    text = str(caught.value)
    assert ":15: conversation.parties[2].language: the gateway does not recognize 'ja-JP'; it recognizes: en-US, es-ES" in text
    assert ":11: conversation.parties[1].language: the gateway cannot translate what 'Bea' says (es) into xx, ja" in text
    assert ":6: conversation.parties[0].language: the gateway cannot translate what 'Ann' says (en) into ja " in text


def test_the_offered_languages_pass(tmp_path, gateway):
    config, path = load(tmp_path, f"uplink:\n  url: {gateway.base_url}\n" + TWO)
    check_environment(config, path)
