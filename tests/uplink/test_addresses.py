"""``uplink.urls``: several gateways without a balancer; the next connect after a failure goes elsewhere."""

from __future__ import annotations

import random
import socket
import textwrap

import pytest

from agent.config.schema import load_agent_config
from agent.uplink.addresses import next_address, with_origin
from agent.uplink.config import UplinkConfig
from parley_common.typedyaml import ConfigError
from tests.support.data import shared_data_dir
from tests.support.sdk import say_through_uplink
from tests.support.speech import english_samples
from tests.uplink.test_uplink import FAST_RECONNECT


def test_ordered_moves_on_after_a_failure_and_stays_after_a_planned_reconnect():
    assert next_address(None, False, 3, "ordered") == 0
    assert [next_address(i, True, 3, "ordered") for i in range(3)] == [1, 2, 0]
    assert next_address(2, False, 3, "ordered") == 2


def test_random_spreads_first_connects_and_never_retries_the_one_that_failed():
    rng = random.Random(7)
    assert {next_address(None, False, 3, "random", rng) for _ in range(50)} == {0, 1, 2}
    assert all(next_address(1, True, 3, "random", rng) != 1 for _ in range(50))


def test_the_built_url_moves_to_another_address_with_its_path_and_query():
    url = "ws://10.0.0.1:5318/speech/translate?api-version=1.0&from=en-US&to=es"
    assert with_origin(url, "wss://gw2.example:443") == "wss://gw2.example:443/speech/translate?api-version=1.0&from=en-US&to=es"


def test_urls_of_different_services_or_with_url_are_errors_with_their_line(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent("""\
        uplink:
          urls: [ws://10.0.0.1:5318, "ftp://10.0.0.2:5318"]
        """))
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert f"{path}:2: uplink.urls" in str(caught.value) and "scheme 'ftp'" in str(caught.value)
    with pytest.raises(ValueError, match="paths differ"):
        UplinkConfig(urls=("ws://a:1/speech/translate", "ws://b:1/stt/speech/universal/v2"))
    with pytest.raises(ValueError, match="not both"):
        UplinkConfig(url="ws://a:1", urls=("ws://b:1", "ws://c:1"))


@pytest.mark.slow
@pytest.mark.parametrize("order", ["ordered", "random"])
def test_with_a_dead_address_first_the_utterance_is_served_by_the_live_one(gateway, order):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    dead_url = f"ws://127.0.0.1:{dead.getsockname()[1]}"
    reference, pcm = english_samples(shared_data_dir(), limit=1)[0]
    config = UplinkConfig(backend="gateway", urls=(dead_url, gateway.base_url), url_order=order,
                          reconnect=FAST_RECONNECT)
    events = say_through_uplink(config, pcm)
    dead.close()
    finals = [e for e in events if type(e).__name__ == "FinalResult"]
    assert len(finals) == 1 and finals[0].source_text
