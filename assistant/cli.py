"""``mimo-home`` command line: run, ask, config check, demo, eval, bench, listen, model."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.config import (
    DEFAULT_CONFIG_PATH,
    AutomationConfig,
    Config,
    ConfigError,
    load_config,
    mqtt_env_overrides,
)
from assistant.llm.bench import add_bench_llm_arguments
from assistant.llm.models import add_model_arguments
from assistant.virtual.runtime import running_demo
from assistant.voice.commands import add_bench_voice_arguments, add_listen_arguments
from assistant.voice.piper_voices import add_voice_pull_arguments

log = logging.getLogger("mimo-home")

CONFIG_ENV = "MIMO_HOME_CONFIG"


def resolve_config(path: str | None, *, allow_demo: bool = False) -> Config:
    """--config, else $MIMO_HOME_CONFIG, else /etc/mimo-home/mimo-home.yaml, else (for the
    client commands) a running demo, else defaults."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if chosen is None and DEFAULT_CONFIG_PATH.is_file():
        chosen = str(DEFAULT_CONFIG_PATH)
    config = load_config(chosen)
    if chosen is None and allow_demo:
        demo = running_demo()
        if demo is not None:
            state_dir, automation = demo.pop("state_dir", None), demo.pop("automation", None)
            if state_dir:
                config = config.model_copy(update={"state_dir": Path(str(state_dir))})
            if isinstance(automation, dict):
                config = config.model_copy(update={
                    "automation": AutomationConfig.model_validate(automation)})
            # As everywhere, the environment wins: MIMO_HOME__MQTT__PORT=... beats the demo.
            demo = {key: value for key, value in demo.items()
                    if key not in mqtt_env_overrides()}
            config = config.model_copy(update={"mqtt": config.mqtt.model_copy(update=demo)})
    return config


def setup_logging(level: str) -> None:
    # Under systemd, journald adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") \
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


# -- commands --------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from assistant.daemon import Daemon, StateDirectoryError

    config = resolve_config(args.config)
    setup_logging(config.log_level)
    try:
        daemon = Daemon(config)
    except StateDirectoryError as exc:  # exit status 2: the unit does not restart on it
        print(f"mimo-home: {exc}", file=sys.stderr)
        return 2
    asyncio.run(daemon.run())
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.file or args.config
    if path is None:
        print("config check: give the file to check", file=sys.stderr)
        return 2
    try:
        load_config(path)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def _daemon_reply(args: argparse.Namespace, command: str,
                  request: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | None:
    """One request to the running daemon (``request`` gets the ApiClient); None, after saying
    why, when the daemon cannot be reached or does not answer."""
    from assistant.transport.api import ApiClient, DaemonNotRunningError

    config = resolve_config(args.config, allow_demo=True)
    try:
        with ApiClient(config.mqtt) as client:
            return request(client)
    except (DaemonNotRunningError, TimeoutError) as exc:
        print(f"mimo-home {command}: {exc}", file=sys.stderr)
        return None


def _show_reply(args: argparse.Namespace, body: dict[str, Any] | None,
                render: Callable[[dict[str, Any]], str]) -> int:
    if body is None:
        return 1
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
    elif "error" in body:
        print(f"error: {body['error']}")
    else:
        print(render(body))
    return 0 if "error" not in body else 1


def cmd_ask(args: argparse.Namespace) -> int:
    body = _daemon_reply(args, "ask", lambda client: client.ask(
        " ".join(args.text), conversation_id=args.conversation_id, area=args.area,
        timeout=args.timeout))
    return _show_reply(args, body, lambda reply: reply["reply"])


def cmd_devices(args: argparse.Namespace) -> int:
    from assistant.appliances.table import render_inventory

    body = _daemon_reply(args, "devices", lambda client: client.devices(timeout=args.timeout))
    return _show_reply(args, body, render_inventory)


def cmd_rules_check(args: argparse.Namespace) -> int:
    from assistant.automations import check_rules

    config = resolve_config(args.config, allow_demo=True)
    report, code = check_rules(config, Path(args.dir) if args.dir else None)
    print(report)
    return code


def cmd_rules_list(args: argparse.Namespace) -> int:
    body = _daemon_reply(args, "rules list", lambda client: client.rules(
        "list", timeout=args.timeout))
    return _show_reply(args, body, _render_rules)


def cmd_rules_run(args: argparse.Namespace) -> int:
    body = _daemon_reply(args, "rules run", lambda client: client.rules(
        "run", args.name, timeout=args.timeout))
    code = _show_reply(args, body, _render_run)
    result = (body or {}).get("result")
    return 1 if isinstance(result, dict) and result.get("result") == "failed" else code


def _render_run(body: dict[str, Any]) -> str:
    result = body.get("result")
    if isinstance(result, dict):
        reason = f" ({result['reason']})" if result.get("reason") else ""
        return f"{body.get('ran')}: {result.get('result')}{reason}"
    return f"{body.get('ran')}: {result}"


def _render_rules(body: dict[str, Any]) -> str:
    rules = body.get("rules") or []
    if not rules:
        return "No rules loaded."
    lines = []
    for rule in rules:
        extra = {k: v for k, v in rule.items() if k not in ("name", "file") and v not in
                 (None, "", [], {})}
        details = ", ".join(f"{k} {v}" for k, v in extra.items())
        lines.append(f"{rule.get('name')}  ({rule.get('file')})" + (f": {details}"
                                                                       if details else ""))
    return "\n".join(lines)


def cmd_listen(args: argparse.Namespace) -> int:
    from assistant.transport.api import ApiClient, DaemonNotRunningError
    from assistant.voice.commands import listen_command

    config = resolve_config(args.config, allow_demo=True)
    try:
        client = ApiClient(config.mqtt)
    except DaemonNotRunningError as exc:
        print(f"mimo-home listen: {exc}", file=sys.stderr)
        return 1
    with client:
        return listen_command(args, lambda wav: asyncio.to_thread(client.listen, wav,
                                                                  args.timeout))


def cmd_bench_voice(args: argparse.Namespace) -> int:
    from assistant.virtual.bench_report import render, voice_bench

    config = resolve_config(args.config)
    setup_logging(args.log_level or "WARNING")
    out = io.StringIO()
    code = asyncio.run(voice_bench(config, args, out))
    if code == 0:
        print(render(json.loads(out.getvalue()), True) if args.json
              else render({}, False, [out.getvalue().rstrip()]))
    return code


def cmd_bench_nlu(args: argparse.Namespace) -> int:
    from assistant.virtual.bench_report import nlu_lines, nlu_part, render

    result = nlu_part(args.repeats)
    print(render(result, args.json, nlu_lines(result)))
    return 0


def cmd_bench_llm(args: argparse.Namespace) -> int:
    from assistant.llm.bench import bench_llm_command
    from assistant.virtual.bench_report import describe_machine

    return bench_llm_command(args, machine=describe_machine())


def cmd_bench_mqtt(args: argparse.Namespace) -> int:
    from assistant.virtual.bench_report import mqtt_lines, mqtt_part, render

    setup_logging(args.log_level or "WARNING")
    result = mqtt_part(args.messages, args.repeats, args.broker)
    print(render(result, args.json, mqtt_lines(result)))
    return 0


def cmd_bench_startup(args: argparse.Namespace) -> int:
    from assistant.virtual.bench_report import render, startup_lines, startup_part

    result = startup_part(_startup_config(args), args.repeats)
    print(render(result, args.json, startup_lines(result)))
    return 0 if result["reached_ready"] == result["repeats"] else 1


def cmd_bench_all(args: argparse.Namespace) -> int:
    from assistant.virtual import bench_report as report

    config = resolve_config(args.config)
    setup_logging(args.log_level or "WARNING")
    parts: dict[str, Callable[[], dict[str, Any]]] = {
        "nlu": lambda: report.nlu_part(args.nlu_repeats),
        "llm": lambda: report.llm_part(args.config),
        "voice": lambda: report.voice_part(config),
        "mqtt": lambda: report.mqtt_part(args.messages, args.repeats),
        "startup": lambda: report.startup_part(_startup_config(args), args.repeats),
    }
    chosen = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        print(f"--parts: unknown {', '.join(unknown)} (choose from {', '.join(parts)})",
              file=sys.stderr)
        return 2
    document = report.run_all({name: parts[name] for name in chosen})
    print(json.dumps(document, indent=2) if args.json
          else "\n".join(report.figure_lines(document)))
    return 1 if document["failed"] else 0


def _startup_config(args: argparse.Namespace) -> Config:
    """The config given (as ``mimo-home run`` would read it), else the demo's."""
    from assistant.virtual.bench_startup import demo_startup_config

    if args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH.is_file():
        return resolve_config(args.config)
    return demo_startup_config(load_config(None))


def cmd_model(args: argparse.Namespace) -> int:
    from assistant.llm.models import command_models_dir, model_command
    from assistant.voice.piper_voices import parse_voice_name, pull_voice_command

    if args.model_command == "pull" and parse_voice_name(args.name) is not None:
        return pull_voice_command(args, args.dir or command_models_dir())
    return model_command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from assistant.virtual.demo import run_demo

    config = resolve_config(args.config)
    if args.language:
        try:
            understanding = config.understanding.model_validate(
                {**config.understanding.model_dump(), "language": args.language})
            config = config.model_copy(update={"understanding": understanding})
        except ValueError as error:
            print(f"--language: {error}", file=sys.stderr)
            return 2
    setup_logging(args.log_level or "WARNING")
    return asyncio.run(run_demo(config, home=args.home, config_given=bool(
        args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH.is_file()),
        protocols=args.protocols, fresh=args.fresh))


def cmd_eval(args: argparse.Namespace) -> int:
    from assistant.virtual.evaluation import run_eval_command
    from assistant.virtual.stack import with_bundled_llm

    config = with_bundled_llm(resolve_config(args.config)) if not args.no_llm \
        else resolve_config(args.config)
    setup_logging(args.log_level or "WARNING")
    return run_eval_command(config, args)


# The virtual home's protocols (assistant.virtual.protocols; not imported: it is heavy).
PROTOCOLS_HELP = ("how the virtual devices speak: ha (HA discovery, the default), mixed "
                  "(spread over zigbee2mqtt, tasmota, shelly, homie and ha), or one of those")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimo-home", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help=f"configuration file (default: ${CONFIG_ENV}, then "
                             f"{DEFAULT_CONFIG_PATH} if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", parents=[common], help="validate a config file")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=cmd_config_check)

    ask = sub.add_parser("ask", parents=[common], help="send a text request to the daemon")
    ask.add_argument("text", nargs="+")
    ask.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    ask.add_argument("--area", help="the area the request comes from")
    ask.add_argument("--conversation-id", help="continue a conversation (for 'yes')")
    ask.add_argument("--timeout", type=float, default=120.0)
    ask.set_defaults(func=cmd_ask)

    devices = sub.add_parser("devices", parents=[common],
                             help="list the daemon's entities and the appliances on the LAN")
    devices.add_argument("--json", action="store_true", help="print the inventory as JSON")
    devices.add_argument("--timeout", type=float, default=30.0)
    devices.set_defaults(func=cmd_devices)

    rules = sub.add_parser("rules", help="automation rules (Home Assistant automation YAML)")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    rules_check = rules_sub.add_parser("check", parents=[common],
                                       help="validate a rules directory (default: the config's)")
    rules_check.add_argument("dir", nargs="?")
    rules_check.set_defaults(func=cmd_rules_check)
    rules_list = rules_sub.add_parser("list", parents=[common],
                                      help="the daemon's rules and what they last did")
    rules_list.add_argument("--json", action="store_true")
    rules_list.add_argument("--timeout", type=float, default=30.0)
    rules_list.set_defaults(func=cmd_rules_list)
    rules_run = rules_sub.add_parser("run", parents=[common],
                                     help="run a rule's actions now (triggers and conditions "
                                          "skipped)")
    rules_run.add_argument("name")
    rules_run.add_argument("--json", action="store_true")
    rules_run.add_argument("--timeout", type=float, default=60.0)
    rules_run.set_defaults(func=cmd_rules_run)

    demo = sub.add_parser("demo", parents=[common],
                          help="run the daemon with a virtual home (no setup needed)")
    demo.add_argument("--home", help="a home-assistant-datasets fixture dir or file")
    demo.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    demo.add_argument("--protocols", default="ha", help=PROTOCOLS_HELP)
    demo.add_argument("--fresh", action="store_true",
                      help="forget the timers, schedules, lists and rules of earlier demo runs")
    demo.add_argument("--language", help="the language the home is spoken to in (it, es, ...): "
                      "the demo home's devices answer to their names in it")
    demo.set_defaults(func=cmd_demo)

    evaluate = sub.add_parser("eval", parents=[common], help="score understanding on datasets")
    evaluate.add_argument("path", help="a home folder, a folder of homes, or ha-intents/<lang>")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--no-llm", action="store_true", help="fast path only")
    evaluate.add_argument("--limit", type=int, help="at most N sentences")
    evaluate.add_argument("--confirm", choices=["yes", "no"], default="yes",
                          help="how the simulated user answers confirmation questions")
    evaluate.add_argument("--failures", metavar="FILE",
                          help="write every sentence that did not pass to FILE (JSON)")
    evaluate.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    evaluate.add_argument("--protocols", default="ha", help=PROTOCOLS_HELP)
    evaluate.set_defaults(func=cmd_eval)

    listen = sub.add_parser("listen", parents=[common],
                            help="send a recording to the daemon; print transcript and reply")
    add_listen_arguments(listen)
    listen.set_defaults(func=cmd_listen)

    bench = sub.add_parser("bench", help="speed figures (docs/BENCHMARKS.md)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    nlu = bench_sub.add_parser("nlu", parents=[common], help="fast-path latency")
    nlu.add_argument("--json", action="store_true")
    nlu.add_argument("--repeats", type=int, default=20)
    nlu.set_defaults(func=cmd_bench_nlu)
    llm = bench_sub.add_parser("llm", parents=[common],
                               help="LLM latency, prompt-cache effect and output validity")
    add_bench_llm_arguments(llm)
    llm.set_defaults(func=cmd_bench_llm)
    voice = bench_sub.add_parser("voice", parents=[common],
                                 help="speech-to-command latency and transcript accuracy")
    add_bench_voice_arguments(voice)
    voice.add_argument("--log-level", choices=levels)
    voice.set_defaults(func=cmd_bench_voice)
    mqtt = bench_sub.add_parser("mqtt", parents=[common],
                                help="state messages ingested per second against a plain "
                                     "subscriber, and the command round trip")
    mqtt.add_argument("--json", action="store_true")
    mqtt.add_argument("--messages", type=int, default=20000, help="messages per burst")
    mqtt.add_argument("--repeats", type=int, default=3)
    mqtt.add_argument("--broker", default="auto",
                      help="auto (Mosquitto when installed, else the embedded broker)")
    mqtt.add_argument("--log-level", choices=levels)
    mqtt.set_defaults(func=cmd_bench_mqtt)
    startup = bench_sub.add_parser("startup", parents=[common],
                                   help="process start to READY, and memory once the models "
                                        "are in (the demo's config unless one is given)")
    startup.add_argument("--json", action="store_true")
    startup.add_argument("--repeats", type=int, default=3)
    startup.set_defaults(func=cmd_bench_startup)
    every = bench_sub.add_parser("all", parents=[common],
                                 help="every bench above, in one JSON document")
    every.add_argument("--json", action="store_true")
    every.add_argument("--parts", default="nlu,llm,voice,mqtt,startup",
                       help="comma-separated parts to run (default: all)")
    every.add_argument("--repeats", type=int, default=3, help="mqtt and startup runs")
    every.add_argument("--nlu-repeats", type=int, default=20)
    every.add_argument("--messages", type=int, default=20000, help="mqtt messages per burst")
    every.add_argument("--log-level", choices=levels)
    every.set_defaults(func=cmd_bench_all)
    model = sub.add_parser("model", help="download, list and verify model files")
    add_voice_pull_arguments(add_model_arguments(model))
    model.set_defaults(func=cmd_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"mimo-home: invalid configuration {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
