"""Configuration: a msgspec Struct read from config.toml, then PM_AGENT_* variables, then flags.

Every source is validated on its own so an error names where the bad value came from, and
carries the fix for that source. An unknown key in the file or a value of the wrong type is an
error, never ignored; an unknown PM_AGENT_* variable is only a warning (`unknown_environment`):
the environment is shared with every other program, and a stale export must not stop the daemon.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from client import locations
from daemon.domain.quality.model import Weights
from daemon.domain.work.settings import WorkSettings
from daemon.runtime.schedules import parse_schedule

ENV_PREFIX = "PM_AGENT_"
MiB = 1024 * 1024


class ConfigError(Exception):
    """A configuration value is missing, unknown or malformed; the message says which, `fix`
    what to do about it where the bad value came from."""

    kind: ClassVar[Literal["config", "dev_root"]] = "config"

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class DevRootMissing(ConfigError):
    """The Dev root does not exist and the data folder would have to be created inside it."""

    kind: ClassVar[Literal["config", "dev_root"]] = "dev_root"


Every = Annotated[str, msgspec.Meta(description='"6h", "30m", "1d", "daily 03:00", or "off"')]


class Schedules(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """When the daemon runs its own jobs."""

    backup: Every = "daily 03:00"  # a verified copy in <data>/backups, then retention
    quality: Every = "6h"
    maintenance: Every = "8h"  # WAL checkpoint + PRAGMA optimize
    retention: Every = "daily 04:00"  # events past event_retention_days / _max

    def __post_init__(self) -> None:
        # In words, with examples: a regular expression in an error helps nobody.
        for name in self.__struct_fields__:
            value = getattr(self, name)
            try:
                parse_schedule(value)
            except ValueError as e:
                raise ValueError(f"schedule.{name}: {e}") from None


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Everything a user can set. Paths may start with `~`; empty means "the default"."""

    dev_root: str = "~/Dev"
    data_dir: str = ""  # default: <dev_root>/.pm-agent
    socket: str = ""  # default: $XDG_RUNTIME_DIR/pm-agent/pm-agent.sock or /tmp/pm-agent-$UID/…
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 5000
    write_batch_max: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 512
    write_queue_max: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 4096
    busy_wait_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 2000
    readers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    max_message_bytes: Annotated[int, msgspec.Meta(ge=4096, le=1024 * MiB)] = 16 * MiB
    max_output_buffer_bytes: Annotated[int, msgspec.Meta(ge=65536, le=4096 * MiB)] = 32 * MiB
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    max_inflight_per_connection: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 128
    idle_timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # 0: never
    stop_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str = ""  # "": journal/terminal/state-dir file as fits; "-": stderr
    # projects
    own_handles: list[str] = msgspec.field(default_factory=list)  # your accounts (GitHub…)
    scan_max_depth: Annotated[int, msgspec.Meta(ge=0, le=8)] = 4
    follow_symlinks: bool = False
    scan_threads: Annotated[int, msgspec.Meta(ge=1, le=32)] = 4
    rescan_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # 0: never
    watch: bool = True
    settle_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 100
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0
    max_watches: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: as many as the OS allows
    # quality, jobs, the schedule ([schedule] and [quality_weights] tables in config.toml)
    schedule: Schedules = msgspec.field(default_factory=Schedules)
    quality_weights: Weights = msgspec.field(default_factory=Weights)
    work: WorkSettings = msgspec.field(default_factory=WorkSettings)  # [work], [work.urgency]
    quality_settle_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0  # after a project changed
    job_concurrency: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    job_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    event_retention_days: Annotated[float, msgspec.Meta(ge=0)] = 90.0  # 0: keep for ever
    event_retention_max: Annotated[int, msgspec.Meta(ge=0)] = 1_000_000  # newest kept; 0: no cap
    agent_stale_s: Annotated[float, msgspec.Meta(ge=0)] = 900.0  # silent this long: stale; 0 never
    # backups: the newest `backup_keep_last` regular ones plus the newest of each of the last
    # `backup_keep_weeks` weeks; safety copies (before-*) counted apart (the newest
    # `backup_keep_last` of them); the newest taken before a migration and the one last
    # restored always kept
    backup_keep_last: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 7
    backup_keep_weeks: Annotated[int, msgspec.Meta(ge=0, le=520)] = 8


FIELDS: tuple[str, ...] = Config.__struct_fields__
_LIST_FIELDS = frozenset({"own_handles"})


def _describe(error: msgspec.ValidationError) -> str:
    # msgspec says "… - at `$.busy_timeout_ms`"; a user thinks in keys, not JSON paths.
    return str(error).replace("`$.", "`")


def _validate(raw: Mapping[str, Any], source: str, fix: str, *, strict: bool = True) -> None:
    try:
        msgspec.convert(dict(raw), Config, strict=strict)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_describe(e)}", fix) from None


def _from_file(path: str, explicit: bool) -> dict[str, Any]:
    fix = f"correct it in {path}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                f"config file {path} (from {locations.CONFIG_ENV}) does not exist",
                f"create {path}, or point {locations.CONFIG_ENV} at the file you meant",
            ) from None
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}", fix) from None
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path}: {e.strerror}", f"make {path} readable by you"
        ) from None
    _validate(data, f"config file {path}", fix)
    return data


def _env_key(name: str) -> str | None:
    """The config key a PM_AGENT_* variable sets; None when it sets none."""
    if not name.startswith(ENV_PREFIX) or name == locations.CONFIG_ENV:
        return None
    key = name[len(ENV_PREFIX) :].lower()
    return key if key in FIELDS else None


def unknown_environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Each PM_AGENT_* variable that sets nothing (it is ignored), with the warning to give."""
    known = [ENV_PREFIX + f.upper() for f in FIELDS] + [locations.CONFIG_ENV]
    found = {}
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            # Compared without the shared prefix, which would make every name look close.
            key = name[len(ENV_PREFIX) :].lower()
            close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.75)
            hint = (
                f"did you mean {ENV_PREFIX + close[0].upper()}?"
                if close
                else "known: " + ", ".join(known)
            )
            found[name] = f"unknown environment variable {name} is ignored ({hint})"
    return found


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in env.items():
        key = _env_key(name)
        if key is None:
            continue
        # Environment values are strings; strict=False lets "5000" become an int, and a
        # list is written comma-separated.
        parsed: Any = value
        if key in _LIST_FIELDS:
            parsed = [part.strip() for part in value.split(",") if part.strip()]
        _validate(
            {key: parsed},
            f"environment variable {name}={value!r}",
            f"correct {name} where it is set, or unset it",
            strict=False,
        )
        values[key] = parsed
    return values


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Merge file < environment < flags into one validated Config."""
    path = locations.config_path(env)
    merged = _from_file(path, explicit=bool(env.get(locations.CONFIG_ENV)))
    merged.update(_from_env(env))
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        _validate(given, "command line", "correct the option on the command line")
        merged.update(given)
    return msgspec.convert(merged, Config, strict=False)


class Paths(msgspec.Struct, frozen=True, kw_only=True):
    """Absolute paths derived from a Config."""

    dev_root: str
    data_dir: str
    db_dir: str
    db_path: str
    backups_dir: str
    damaged_dir: str  # damaged databases kept aside by a repair or restore
    exports_dir: str
    lock_path: str
    socket_path: str
    log_file: str  # "-" for stderr, "" for "decide at start-up"


def resolve_paths(config: Config, env: Mapping[str, str] = os.environ) -> Paths:
    dev_root = locations.expand(config.dev_root, env)
    data_dir = (
        locations.expand(config.data_dir, env)
        if config.data_dir
        else os.path.join(dev_root, ".pm-agent")
    )
    db_dir = os.path.join(data_dir, "db")
    socket_path = (
        locations.expand(config.socket, env)
        if config.socket
        else locations.default_socket_path(env)
    )
    log_file = config.log_file
    if log_file not in ("", "-"):
        log_file = locations.expand(log_file, env)
    return Paths(
        dev_root=dev_root,
        data_dir=data_dir,
        db_dir=db_dir,
        db_path=os.path.join(db_dir, "pm-agent.db"),
        backups_dir=os.path.join(data_dir, "backups"),
        damaged_dir=os.path.join(data_dir, "damaged"),
        exports_dir=os.path.join(data_dir, "exports"),
        lock_path=os.path.join(data_dir, "pm-agentd.lock"),
        socket_path=socket_path,
        log_file=log_file,
    )


def dev_root_fix(root: str, env: Mapping[str, str] = os.environ) -> str:
    return (
        f"mkdir -p {root} if your projects are to live there; otherwise set dev_root in "
        f"{locations.config_path(env)} (or PM_AGENT_DEV_ROOT) to the folder that holds them"
    )


def _not_a_folder(path: str) -> str:
    return "is not a folder" if os.path.lexists(path) else "does not exist"


def check_dev_root(paths: Paths, env: Mapping[str, str] = os.environ) -> None:
    """Refuse to start when the data folder would have to be made inside a missing Dev root
    (the default, `<dev_root>/.pm-agent`): creating it would also create the Dev root, so a typo
    in dev_root would silently make a new, empty Dev folder with a second, empty database."""
    root = paths.dev_root
    if os.path.isdir(root) or os.path.commonpath([root, paths.data_dir]) != root:
        return
    raise DevRootMissing(
        f"the Dev root {root} {_not_a_folder(root)}, and the data folder {paths.data_dir} "
        "would be inside it; pm-agentd created neither",
        dev_root_fix(root, env),
    )


def dev_root_warnings(paths: Paths, env: Mapping[str, str] = os.environ) -> list[str]:
    """What to say about Dev roots that are not there (nothing is found or watched in them)."""
    root = paths.dev_root
    if os.path.isdir(root):
        return []
    return [
        f"the Dev root {root} {_not_a_folder(root)}: no project is found there; "
        f"fix: {dev_root_fix(root, env)}"
    ]
