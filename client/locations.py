"""Where pm-agent's files are, resolved the same way by the daemon and by every client.

Standard library only and nothing imported eagerly: the CLI's fast path (`pm status`) goes
through here. Precedence everywhere: flag, then environment, then config file, then default.
"""

from __future__ import annotations

import os

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG_ENV = "PM_AGENT_CONFIG"
SOCKET_ENV = "PM_AGENT_SOCKET"
SOCKET_NAME = "pm-agent.sock"


class ConfigFileError(Exception):
    """The config file exists but cannot be read as TOML."""


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def expand(path: str, env: Mapping[str, str] = os.environ) -> str:
    """`~` means the HOME of `env`, so tests that set HOME never touch the real one."""
    if path == "~" or path.startswith("~/"):
        path = _home(env) + path[1:]
    return os.path.abspath(path)


def config_path(env: Mapping[str, str] = os.environ) -> str:
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return expand(explicit, env)
    base = env.get("XDG_CONFIG_HOME") or os.path.join(_home(env), ".config")
    return os.path.join(base, "pm-agent", "config.toml")


def state_dir(env: Mapping[str, str] = os.environ) -> str:
    """Logs of a daemon that has neither a terminal nor a journal go here."""
    base = env.get("XDG_STATE_HOME") or os.path.join(_home(env), ".local", "state")
    return os.path.join(base, "pm-agent")


def cache_dir(env: Mapping[str, str] = os.environ) -> str:
    """What pm remembers between runs (the daemon it greeted, the commands it offers)."""
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        base = os.path.join(_home(env), ".cache")
    return os.path.join(base, "pm-agent")


def default_socket_path(env: Mapping[str, str] = os.environ) -> str:
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "pm-agent", SOCKET_NAME)
    return f"/tmp/pm-agent-{os.getuid()}/{SOCKET_NAME}"  # noqa: S108 - per-user, checked 0700


def socket_from_config(path: str) -> str | None:
    """The `socket` key of the config file, parsing TOML only when the key can be there."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigFileError(f"cannot read config file {path}: {e.strerror}") from e
    if b"socket" not in raw:
        return None  # tomllib costs ~10 ms of start-up; most configs never name the socket
    import tomllib

    try:
        value = tomllib.loads(raw.decode("utf-8")).get("socket")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigFileError(f"config file {path}: {e}") from e
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigFileError(f"config file {path}: `socket` must be a string")
    return value


def client_socket_path(flag: str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The socket a client should talk to."""
    if flag:
        return expand(flag, env)
    if env.get(SOCKET_ENV):
        return expand(env[SOCKET_ENV], env)
    configured = socket_from_config(config_path(env))
    if configured:
        return expand(configured, env)
    return default_socket_path(env)
