"""The service manager's files for pm-agentd: systemd user units or a launchd LaunchAgent,
rendered from the templates in systemd/ and launchd/ with this installation's paths, and the
manager's commands (run, or handed back to print where no manager answers).

Standard library only (with client.locations): `pm daemon …` imports it, `pm status` never.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from client import locations
from client.errors import ClientError

UNIT = "pm-agent"
SOCKET_UNIT = f"{UNIT}.socket"
SERVICE_UNIT = f"{UNIT}.service"
LABEL = "dev.pm-agent.daemon"
# Set when installing, these name the daemon pm would start; the unit starts that one.
BAKED_ENV = ("PM_AGENT_CONFIG", "PM_AGENT_DEV_ROOT", "PM_AGENT_DATA_DIR")
PROBE_TIMEOUT_S = 5.0
ACTION_TIMEOUT_S = 330.0  # `systemctl restart` waits for READY: TimeoutStartSec=300, plus a margin
STOP_WAIT_S = 60.0

_CLIENT_DIR = os.path.dirname(os.path.abspath(__file__))
# A wheel carries the templates in client/units/; a source tree (or editable install) at its top.
TEMPLATE_DIRS = (os.path.join(_CLIENT_DIR, "units"), os.path.dirname(_CLIENT_DIR))


class ServiceError(ClientError):
    """The service manager refused, or pm-agent is not installed where it was asked to act
    (exit status 1 in the CLI, like any ClientError)."""


# --- what gets written ------------------------------------------------------------------------
def daemon_argv(executable: str = sys.executable) -> list[str]:
    """This installation's daemon: the `pm-agentd` script beside the interpreter, else
    `python -m daemon`. The interpreter's path is kept as it is (a venv's python is a symlink)."""
    python = os.path.abspath(executable)
    script = os.path.join(os.path.dirname(python), "pm-agentd")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [python, "-m", "daemon"]


def baked_environment(env: Mapping[str, str]) -> dict[str, str]:
    return {name: locations.expand(env[name], env) for name in BAKED_ENV if env.get(name)}


def template(relative: str) -> str:
    for base in TEMPLATE_DIRS:
        path = os.path.join(base, relative)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    raise ServiceError(f"{relative} is not part of this installation (looked in {TEMPLATE_DIRS})")


def _fill(text: str, name: str, value: str) -> str:
    if name not in text:
        raise ServiceError(f"the template has no {name} to fill in")
    return text.replace(name, value)


def _specifiers(value: str) -> str:
    """A value systemd reads with %-specifiers (and one line per setting)."""
    if "\n" in value or "\r" in value:
        raise ServiceError(f"a path with a line break cannot go into a unit: {value!r}")
    return value.replace("%", "%%")


def _exec_word(arg: str, first: bool = False) -> str:
    """One word of ExecStart=. `$` is expanded in the arguments, never in the program's path."""
    word = _specifiers(arg).replace("\\", "\\\\").replace('"', '\\"')
    word = word if first else word.replace("$", "$$")
    quote = not word or "'" in word or '"' in arg or any(c.isspace() for c in word)
    return f'"{word}"' if quote else word


def _environment_line(name: str, value: str) -> str:
    text = _specifiers(f"{name}={value}").replace("\\", "\\\\").replace('"', '\\"')
    return f'Environment="{text}"\n'


def _listen_stream(socket_path: str, env: Mapping[str, str]) -> str:
    """%t/pm-agent/pm-agent.sock when that is the socket the clients use, else the path."""
    runtime = env.get("XDG_RUNTIME_DIR") or ""
    if os.path.isabs(runtime) and socket_path == os.path.join(runtime, UNIT, locations.SOCKET_NAME):
        return f"%t/{UNIT}/{locations.SOCKET_NAME}"
    return _specifiers(socket_path)


def _resolve_specifiers(value: str, env: Mapping[str, str]) -> str:
    """The path a ListenStream= we wrote stands for (only %t and %% occur in it)."""
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return "%".join(part.replace("%t", runtime) for part in value.split("%%"))


def _setting(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    return None


def _write(path: str, text: str) -> str:
    """Write (atomically); says how: wrote, or rewrote (changed / unchanged)."""
    try:
        with open(path, encoding="utf-8") as f:
            before: str | None = f.read()
    except FileNotFoundError:
        before = None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    if before is None:
        return "wrote"
    return "rewrote (unchanged)" if before == text else "rewrote (changed)"


# --- running the manager's tool ---------------------------------------------------------------
@dataclass(frozen=True)
class Ran:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        lines = [line.strip() for line in (self.err + "\n" + self.out).splitlines()]
        return next((line for line in lines if line), f"exit status {self.code}")


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> Ran:
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Ran(tuple(argv), 124, "", f"no answer within {timeout:g} s")
    except OSError as e:
        return Ran(tuple(argv), 127, "", str(e))
    return Ran(tuple(argv), done.returncode, done.stdout, done.stderr)


class Manager:
    """What both managers share; each subclass knows its files, its tool and its steps."""

    name = ""
    tool = ""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def paths(self) -> list[str]:
        raise NotImplementedError

    def loaded(self) -> bool:
        return True

    def leftovers(self) -> list[str]:
        """What enabling created beside the files (removed by hand when the manager is away)."""
        return []

    def prepare(self) -> list[str]:
        return []

    def cleanup(self) -> list[str]:
        return []

    # shared
    def installed(self) -> bool:
        return all(os.path.exists(p) for p in self.paths())

    def present(self) -> list[str]:
        return [p for p in self.paths() if os.path.exists(p)]

    def run(self, argv: Sequence[str], timeout: float = ACTION_TIMEOUT_S) -> Ran:
        return _run(argv, self.env, timeout)

    def _tool_reason(self) -> str | None:
        if shutil.which(self.tool, path=self.env.get("PATH")) is None:
            return f"no {self.tool} on PATH"
        return None


class Systemd(Manager):
    name = "systemd"
    tool = "systemctl"

    @property
    def folder(self) -> str:
        base = self.env.get("XDG_CONFIG_HOME") or locations.expand("~/.config", self.env)
        return os.path.join(base, "systemd", "user")

    def paths(self) -> list[str]:
        return [os.path.join(self.folder, SOCKET_UNIT), os.path.join(self.folder, SERVICE_UNIT)]

    def render(
        self, socket_path: str, argv: list[str], environment: dict[str, str]
    ) -> dict[str, str]:
        socket_unit = _fill(
            template(f"systemd/{SOCKET_UNIT}"),
            "@LISTEN_STREAM@",
            _listen_stream(socket_path, self.env),
        )
        service = _fill(
            template(f"systemd/{SERVICE_UNIT}"),
            "@PM_AGENTD@",
            " ".join(_exec_word(a, first=i == 0) for i, a in enumerate(argv)),
        )
        lines = "".join(_environment_line(k, v) for k, v in environment.items())
        service = _fill(service, "Environment=@ENVIRONMENT@\n", lines)
        socket_path_, service_path = self.paths()
        return {socket_path_: socket_unit, service_path: service}

    def summary(self, text: str) -> str:
        for key in ("ListenStream", "ExecStart"):
            value = _setting(text, key)
            if value is not None:
                return f"{key}={value}"
        return ""

    def installed_socket(self) -> str | None:
        try:
            with open(self.paths()[0], encoding="utf-8") as f:
                value = _setting(f.read(), "ListenStream")
        except OSError:
            return None
        return _resolve_specifiers(value, self.env) if value else None

    def probe(self) -> str | None:
        reason = self._tool_reason()
        if reason is not None:
            return reason
        ran = self.run([self.tool, "--user", "show-environment"], PROBE_TIMEOUT_S)
        return None if ran.code == 0 else f"systemctl --user: {ran.said}"

    def _ctl(self, *args: str) -> list[str]:
        return [self.tool, "--user", *args]

    def install_steps(self, loaded: bool, changed: set[str], reinstall: bool) -> list[list[str]]:
        steps = [
            self._ctl("daemon-reload"),
            self._ctl("enable", "--now", SOCKET_UNIT, SERVICE_UNIT),
        ]
        if reinstall and SOCKET_UNIT in changed:
            steps.append(self._ctl("restart", SOCKET_UNIT))  # the service follows (Requires=)
        elif reinstall and SERVICE_UNIT in changed:
            steps.append(self._ctl("try-restart", SERVICE_UNIT))
        return steps

    def uninstall_steps(self, loaded: bool) -> tuple[list[list[str]], list[list[str]]]:
        return [self._ctl("disable", "--now", SOCKET_UNIT, SERVICE_UNIT)], [
            self._ctl("daemon-reload")
        ]

    def restart_steps(self, loaded: bool) -> list[list[str]]:
        return [self._ctl("restart", SERVICE_UNIT)]

    def start_steps(self, loaded: bool) -> list[list[str]]:
        return [self._ctl("start", SOCKET_UNIT, SERVICE_UNIT)]

    def stop_steps(self, loaded: bool) -> list[list[str]]:
        return [self._ctl("stop", SOCKET_UNIT, SERVICE_UNIT)]

    def leftovers(self) -> list[str]:
        return [
            os.path.join(self.folder, "sockets.target.wants", SOCKET_UNIT),
            os.path.join(self.folder, "default.target.wants", SERVICE_UNIT),
        ]

    def state(self) -> dict[str, str]:
        ran = self.run(
            self._ctl(
                "show", "-p", "Id", "-p", "UnitFileState", "-p", "ActiveState", "-p", "SubState",
                SOCKET_UNIT, SERVICE_UNIT,
            ),
            PROBE_TIMEOUT_S,
        )  # fmt: skip
        if ran.code != 0:
            return {}
        states: dict[str, str] = {}
        for block in ran.out.strip().split("\n\n"):
            props = {k: v for k, _, v in (line.partition("=") for line in block.splitlines())}
            if "Id" in props:
                enabled = props.get("UnitFileState") or "not enabled"
                states[props["Id"]] = (
                    f"{enabled}, {props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
                )
        return states


def _plist(data: bytes) -> dict[str, Any] | None:
    try:
        value = plistlib.loads(data)
    except (ValueError, ExpatError):  # InvalidFileException is a ValueError
        return None
    return value if isinstance(value, dict) else None


class Launchd(Manager):
    name = "launchd"
    tool = "launchctl"

    @property
    def domain(self) -> str:
        return f"gui/{os.getuid()}"

    @property
    def target(self) -> str:
        return f"{self.domain}/{LABEL}"

    @property
    def log_dir(self) -> str:
        return locations.expand(f"~/Library/Logs/{UNIT}", self.env)

    def paths(self) -> list[str]:
        return [locations.expand(f"~/Library/LaunchAgents/{LABEL}.plist", self.env)]

    def render(
        self, socket_path: str, argv: list[str], environment: dict[str, str]
    ) -> dict[str, str]:
        text = template(f"launchd/{LABEL}.plist")
        program = "\n".join(f"\t\t<string>{escape(a)}</string>" for a in argv)
        text = _fill(text, "\t\t<string>@PM_AGENTD@</string>", program)
        text = _fill(text, "@LOG_DIR@", escape(self.log_dir))
        text = _fill(text, "@SOCKET@", escape(socket_path))
        variables = "".join(
            f"\t\t<key>{escape(k)}</key>\n\t\t<string>{escape(v)}</string>\n"
            for k, v in environment.items()
        )
        block = f"\t<key>EnvironmentVariables</key>\n\t<dict>\n{variables}\t</dict>\n"
        text = _fill(text, "\t<!-- @ENVIRONMENT@ -->\n", block if environment else "")
        plistlib.loads(text.encode())  # a broken template fails here, not in launchd
        return {self.paths()[0]: text}

    def summary(self, text: str) -> str:
        data = _plist(text.encode())
        if data is None:
            return "not a property list launchd can read"
        sockets = data.get("Sockets", {}).get(UNIT, {})
        return (
            f"ProgramArguments={shlex.join(data.get('ProgramArguments', []))}, "
            f"SockPathName={sockets.get('SockPathName')}"
        )

    def installed_socket(self) -> str | None:
        try:
            with open(self.paths()[0], "rb") as f:
                data = _plist(f.read())
        except OSError:
            return None
        path = (data or {}).get("Sockets", {}).get(UNIT, {}).get("SockPathName")
        return path if isinstance(path, str) else None

    def prepare(self) -> list[str]:
        existed = os.path.isdir(self.log_dir)
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        return [] if existed else [f"created {self.log_dir} (the daemon's stdout and stderr)"]

    def cleanup(self) -> list[str]:
        try:
            os.rmdir(self.log_dir)
        except FileNotFoundError:
            return []
        except OSError:
            return [f"kept {self.log_dir} (the daemon's logs)"]
        return [f"removed {self.log_dir}"]

    def probe(self) -> str | None:
        reason = self._tool_reason()
        if reason is not None:
            return reason
        ran = self.run([self.tool, "print", self.domain], PROBE_TIMEOUT_S)
        return None if ran.code == 0 else f"launchctl print {self.domain}: {ran.said}"

    def loaded(self) -> bool:
        return self.run([self.tool, "print", self.target], PROBE_TIMEOUT_S).code == 0

    def _load(self) -> list[list[str]]:
        return [
            [self.tool, "enable", self.target],
            [self.tool, "bootstrap", self.domain, self.paths()[0]],
        ]

    def install_steps(self, loaded: bool, changed: set[str], reinstall: bool) -> list[list[str]]:
        unload = [[self.tool, "bootout", self.target]] if loaded else []
        return unload + self._load()

    def uninstall_steps(self, loaded: bool) -> tuple[list[list[str]], list[list[str]]]:
        return ([[self.tool, "bootout", self.target]] if loaded else []), []

    def restart_steps(self, loaded: bool) -> list[list[str]]:
        return [[self.tool, "kickstart", "-k", self.target]] if loaded else self._load()

    def start_steps(self, loaded: bool) -> list[list[str]]:
        return [[self.tool, "kickstart", self.target]] if loaded else self._load()

    def stop_steps(self, loaded: bool) -> list[list[str]]:
        return [[self.tool, "bootout", self.target]] if loaded else []

    def state(self) -> dict[str, str]:
        ran = self.run([self.tool, "print", self.target], PROBE_TIMEOUT_S)
        if ran.code != 0:
            return {LABEL: "not loaded"}
        fields: dict[str, str] = {}
        for key, _, value in (line.strip().partition(" = ") for line in ran.out.splitlines()):
            if value and key in ("state", "pid"):
                fields.setdefault(key, value)  # the job's own come first, before its sockets'
        pid = f", pid {fields['pid']}" if "pid" in fields else ""
        return {LABEL: f"loaded, {fields.get('state', '?')}{pid}"}


AnyManager = Systemd | Launchd
MANAGERS: dict[str, type[AnyManager]] = {"systemd": Systemd, "launchd": Launchd}


def default_manager_name() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def manager(name: str | None = None, env: Mapping[str, str] = os.environ) -> AnyManager:
    return MANAGERS[name or default_manager_name()](env)
