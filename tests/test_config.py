import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import ConfigError, load_config

REPO = Path(__file__).parent.parent


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "config" / "mimo-home.yaml", environ={})
    assert config.mqtt.port == 1883
    assert [a.id for a in config.home.areas][:1] == ["kitchen"]


def test_unknown_keys_and_bad_values_are_reported_with_their_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mqtt:\n  hots: x\n  port: 99999\nunderstanding:\n  confirmation_window_s: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    problems = "\n".join(caught.value.problems)
    assert "mqtt.hots: unknown key" in problems
    assert "mqtt.port: Input should be less than or equal to 65535 (got 99999)" in problems
    assert "understanding.confirmation_window_s" in problems


def test_an_unknown_key_names_the_closest_known_one(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text("llmm: {}\n"
                    "mqtt:\n  portt: 1884\n  zzzzzz: 1\n"
                    "home:\n  areas:\n  - {id: k, name: K, flor: x}\n"
                    "  entities:\n    light.a: {naem: A}\n"
                    "voice:\n  stt:\n    beam_sise: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert sorted(caught.value.problems) == sorted([
        "llmm: unknown key (did you mean llm?)",
        "mqtt.portt: unknown key (did you mean port?)",
        "mqtt.zzzzzz: unknown key",  # nothing close: no guess
        "home.areas.0.flor: unknown key (did you mean floor?)",
        "home.entities.light.a.naem: unknown key (did you mean name?)",
        "voice.stt.beam_sise: unknown key (did you mean beam_size?)",
    ])


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  host: a\n")
    config = load_config(path, environ={"MIMO_HOME__MQTT__HOST": "broker.lan",
                                        "MIMO_HOME__MQTT__PORT": "8883",
                                        "MIMO_HOME__STATE_DIR": "/tmp/x"})
    assert (config.mqtt.host, config.mqtt.port, str(config.state_dir)) == (
        "broker.lan", 8883, "/tmp/x")


def test_password_from_file_or_env(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"mqtt:\n  username: u\n  password_file: {secret}\n")
    assert load_config(path, environ={}).mqtt.resolved_password() == "s3cret"
    env = load_config(None, environ={"MIMO_HOME__MQTT__PASSWORD": "fromenv"})
    assert env.mqtt.resolved_password() == "fromenv"
    assert "fromenv" not in repr(env.mqtt)  # secrets never show up in logs


def test_yaml_syntax_errors_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, environ={})


def test_config_check_command(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "-m", "assistant.cli", "config", "check",
                           str(REPO / "config" / "mimo-home.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("mqtt:\n  port: none\n  hots: x\nvoice:\n  bogus: 1\n")
    bad = subprocess.run([sys.executable, "-m", "assistant.cli", "config", "check",
                          str(bad_file)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "mqtt.port:" in bad.stderr and "voice.bogus: unknown key" in bad.stderr
    assert "mqtt.hots: unknown key (did you mean host?)" in bad.stderr


def test_adapter_topic_prefixes_are_exact_topics() -> None:
    config = load_config(None, environ={"MIMO_HOME__ADAPTERS__ZIGBEE2MQTT__BASE_TOPIC": "z2m/"})
    assert config.adapters.zigbee2mqtt.base_topic == "z2m"
    for bad in ("zigbee2mqtt/#", "+/tele", "/"):
        with pytest.raises(ConfigError, match="wildcard"):
            load_config(None, environ={"MIMO_HOME__ADAPTERS__ZIGBEE2MQTT__BASE_TOPIC": bad})


def test_automation_settings_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("automation:\n  time_zone: Europe/Rome\n"
                    "  location: {latitude: 41.9, longitude: 12.5}\n")
    config = load_config(good, environ={})
    assert config.automation.time_zone == "Europe/Rome"
    assert config.automation.location is not None and config.automation.location.latitude == 41.9
    bad = tmp_path / "bad.yaml"
    bad.write_text("automation:\n  time_zone: Mars/Olympus\n"
                   "  location: {latitude: 123, longitude: 12.5}\n  misfire_grace_s: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, environ={})
    problems = "\n".join(caught.value.problems)
    assert "automation.time_zone" in problems and "Mars/Olympus" in problems
    assert "automation.location.latitude" in problems
    assert "automation.misfire_grace_s" in problems


def test_the_language_is_a_code_home_assistant_intents_covers(tmp_path: Path) -> None:
    path = tmp_path / "language.yaml"
    for code in ("it", "es", "pt-BR"):
        path.write_text(f"understanding:\n  language: {code}\n")
        assert load_config(path, environ={}).understanding.language == code
    path.write_text("understanding:\n  language: itt\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    problem, = caught.value.problems
    assert problem.startswith("understanding.language: Value error, unknown language 'itt'")
    assert "did you mean it" in problem
