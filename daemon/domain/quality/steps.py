"""What a CI step runs, one level down.

A CI file names commands (GitHub Actions and CircleCI `run:`, GitLab and Travis `script:`,
Buildkite `command:`, a Jenkinsfile's `sh '…'`, a `.ci/` script's lines). Many of them run
the project's own entry points rather than a test tool: `scripts/test`, `make ci`, `npm run
check`, `just test`, `bundle exec rake`, `hatch run lint`, `python runtests.py`. `targets`
finds those entry points in one command and reads what each runs: a script file in the
project; a Makefile target (with the targets it depends on or calls with $(MAKE)); a
package.json script (with its pre/post scripts and the scripts it runs); a justfile recipe
(with its dependencies); a Taskfile task; the Rakefile; a pyproject script table (hatch, pdm,
poe). That is one level: what those run in turn is judged by its name and its own commands,
never read (`targets(..., read=False)`).

Parsing is by lines and words, not by a YAML or shell parser: it only has to find command
words, it runs on every project of every scan, and a line it misreads costs a point at worst.
Files are read through ProjectFiles (bounded, never raising), at paths confined to the
project, and at most FOLLOW_MAX of them per assessment.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from daemon.domain.quality.files import ProjectFiles
from daemon.domain.quality.runner_files import (
    expand,
    just_recipes,
    make_rules,
    taskfile_tasks,
    toml_value,
)

FOLLOW_MAX = 16  # targets read per assessment

# Names that say "this runs tests or a linter": test, tests, runtests, run_tests, test:unit,
# unit-test, spec, check, make check (GNU's name for the tests), lint, lint:js, typecheck…
_CHECK_NAME = re.compile(
    r"(?:^|[-_:./])(?:run[-_]?)?(?:tests?|specs?|checks?|lint|linters?|typecheck)(?:$|[-_:./])"
)
# A YAML key whose value is a command (the rest of a keyed line is not): run, script,
# command(s), cmd(s), Azure's bash/pwsh/script, Cirrus's `*_script`, AppVeyor's test_script.
_COMMAND_KEY = re.compile(
    r"(?:run|script|scripts|command|commands|cmd|cmds|bash|sh|pwsh|powershell|[\w-]*_script)"
)
_KEY = re.compile(r"([\w.-]+)\s*:(?:\s+|$)")
_GROOVY_STEP = re.compile(
    r"(?:^|[\s{(;])(?:sh|bat|pwsh|powershell)\s*\(?\s*(?:script\s*:\s*)?"
    r"('''|\"\"\"|'|\")(.*?)(?:\1|$)"
)
_SEPARATORS = re.compile(r"&&|\|\||[;|()`]")
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
_EXPANSION = re.compile(r"^\$(?:\{[^}]*\}|\w+)/?")  # ${PREFIX}pytest, $VENV/bin/…
# Run the rest of the command line: `poetry run pytest`, `bundle exec rake`, `sudo make test`.
_WRAPPERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("poetry", "uv", "pipenv", "rye", "conda", "micromamba", "pixi"), ("run",)),
    "bundle": ("exec",),
    "nix": ("develop", "shell"),
    **dict.fromkeys(("sudo", "time", "env", "exec", "nohup", "command", "xvfb-run"), ()),
}
_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "fish", "pwsh", "powershell"})
_INTERPRETERS = _SHELLS | {"node", "ruby", "perl", "php", "deno", "tsx", "ts-node", "py"}
# A file run by its path alone is a script: no extension, or a script's.
_SCRIPT_SUFFIXES = frozenset({"", ".sh", ".bash", ".zsh", ".py", ".rb", ".pl", ".js", ".mjs"})
_SCRIPT_SUFFIXES |= {".cjs", ".ts", ".ps1", ".bat", ".cmd", ".php"}
_SHELL_SUFFIXES = frozenset({"", ".sh", ".bash", ".zsh", ".ps1", ".bat", ".cmd"})
_CODE_SHEBANG = re.compile(r"python|ruby|node|perl|php|deno")
# Files run with arguments that say what they do; their own text says nothing of it.
_LAUNCHERS = frozenset({"setup.py", "manage.py", "gradlew", "mvnw", "gradlew.bat", "mvnw.cmd"})
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
_JUSTFILES = ("justfile", "Justfile", ".justfile")
_TASKFILES = ("Taskfile.yml", "Taskfile.yaml", "taskfile.yml", "taskfile.yaml")
_RAKEFILES = ("Rakefile", "rakefile", "Rakefile.rb")
_JS_MANAGERS = frozenset({"npm", "pnpm", "yarn", "bun"})
# Their own commands, not scripts (yarn and pnpm run a script named like any other word).
_JS_BUILTINS = frozenset(
    {"install", "i", "ci", "add", "remove", "rm", "update", "up", "upgrade", "exec", "dlx"}
) | {"x", "create", "init", "publish", "pack", "link", "audit", "outdated", "workspace"}
_JS_BUILTINS |= {"workspaces", "config", "set", "cache", "global", "why", "info", "version"}
_PY_INTERPRETER = re.compile(r"python(?:\d+(?:\.\d+)*)?(?:\.exe)?")


class Target(NamedTuple):
    label: str  # as CI names it: "make ci", "scripts/test", "npm run check"
    names: tuple[str, ...]  # what the name rule reads: target names, a script's stem
    body: str  # what it runs, read one level down ("" when not read)
    shell: bool = True  # the body is commands (a recipe, a shell script), not Python or Ruby


@dataclass(slots=True)
class Budget:
    """What one assessment may still read (shared by every CI file of the project)."""

    left: int = FOLLOW_MAX
    seen: set[str] = field(default_factory=set)  # labels already followed

    def take(self, label: str) -> bool:
        if label in self.seen or self.left <= 0:
            return False
        self.seen.add(label)
        self.left -= 1
        return True


def named_check(name: str) -> bool:
    """Does a target's or script's name say it runs tests or a linter?"""
    return _CHECK_NAME.search(name.lower()) is not None


def command_lines(text: str) -> Iterator[str]:
    """The lines of a CI file (or a script) that hold commands, keys and quotes taken off."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if line.startswith("- "):
            line = line[2:].lstrip()
        key = _KEY.match(line)
        if key:
            if not _COMMAND_KEY.fullmatch(key.group(1).lower()):
                continue  # name:, uses:, path:, with: … hold no command
            line = line[key.end() :]
        step = _GROOVY_STEP.search(line)
        if step:
            line = step.group(2)
        if len(line) > 1 and line[0] == line[-1] and line[0] in "'\"":
            line = line[1:-1]
        if line:
            yield line


def commands(line: str) -> list[list[str]]:
    """The commands of one line, each as its words (wrappers and env assignments removed)."""
    found = []
    for part in _SEPARATORS.split(_COMMENT.sub("", line)):
        words = [word.strip("'\"") for word in part.split()]
        words = _bare([word for word in words if word])
        if words:
            found.append(words)
    return found


def targets(
    words: list[str], files: ProjectFiles, budget: Budget | None = None, *, unwrap: bool = True
) -> list[Target]:
    """The project's own entry points one command runs, with what they run when `budget`
    allows reading them (None: names only, for the level below). `bash -c '…'` is looked
    into once (`unwrap`), never shell inside shell without end."""
    program, args = words[0], words[1:]
    base = program.rsplit("/", 1)[-1]
    if base in _SHELLS and args[:1] == ["-c"]:
        if not unwrap:
            return []
        inner = commands(" ".join(args[1:]))
        return [t for one in inner for t in targets(one, files, budget, unwrap=False)]
    if base in _INTERPRETERS or _PY_INTERPRETER.fullmatch(base):
        path = next((arg for arg in args if not arg.startswith("-")), None)
        if path is None or "-m" in args[: args.index(path)]:
            return []  # python -m pytest: a tool, judged by its name
        return _script(path, files, budget, any_suffix=True)
    if "/" in program:
        return _script(program, files, budget, any_suffix=False)
    follow = _FOLLOW.get(base)
    return follow(args, files, budget) if follow else []


# --- the kinds of target --------------------------------------------------------------------


def _script(
    path: str, files: ProjectFiles, budget: Budget | None, *, any_suffix: bool
) -> list[Target]:
    rel = _inside(path)
    suffix = posixpath.splitext(rel or "")[1].lower()
    if rel is None or not (any_suffix or suffix in _SCRIPT_SUFFIXES):
        return []
    stem = posixpath.splitext(posixpath.basename(rel))[0]
    if posixpath.basename(rel) in _LAUNCHERS:
        return []  # a tool's entry point, judged by its command: `python setup.py test`
    if budget is None:
        return [Target(rel, (stem,), "")]
    if not files.is_file(rel) or not budget.take(rel):
        return []
    text = files.text(rel) or ""
    shebang = text[: text.find("\n")] if text.startswith("#!") else ""
    shell = suffix in _SHELL_SUFFIXES and not _CODE_SHEBANG.search(shebang)
    return [Target(rel, (stem,), text, shell)]


def _make(args: list[str], files: ProjectFiles, budget: Budget | None) -> list[Target]:
    folder, makefile, names = "", None, []
    pairs = iter(args)
    for arg in pairs:
        if arg in ("-C", "--directory"):
            folder = next(pairs, "")
        elif arg in ("-f", "--file", "--makefile"):
            makefile = next(pairs, None)
        elif not arg.startswith("-") and "=" not in arg and not arg.isdigit():
            names.append(arg)
    label = " ".join(["make", *names])
    if budget is None:
        return [Target(label, tuple(names), "")]
    candidates = [makefile] if makefile else list(_MAKEFILES)
    found = (_inside(posixpath.join(folder, name)) for name in candidates)
    rel = next((r for r in found if r is not None and files.is_file(r)), None)
    if rel is None or not budget.take(label):
        return [Target(label, tuple(names), "")]
    rules = make_rules(files.text(rel) or "")
    wanted = names or ([next(iter(rules))] if rules else [])
    return [Target(label, tuple(names), expand(wanted, rules, _make_targets))]


def _make_targets(line: str) -> list[str]:
    """The targets a recipe line runs with $(MAKE) / make, within the same Makefile."""
    found: list[str] = []
    for words in commands(line):
        if words[0] in ("make", "gmake"):
            found += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return found


def _scripts(
    args: list[str], files: ProjectFiles, budget: Budget | None, *, manager: str
) -> list[Target]:
    name = _script_name(manager, [arg for arg in args if not arg.startswith("-")])
    if name is None:
        return []
    label = f"{manager} run {name}"
    if budget is None:
        return [Target(label, (name,), "")]
    package = files.json("package.json") if "package.json" in files.files else None
    scripts = package.get("scripts") if isinstance(package, dict) else None
    if not isinstance(scripts, dict) or not budget.take(label):
        return [Target(label, (name,), "")]
    table: dict[str, tuple[list[str], list[str]]] = {
        key: ([], [value]) for key, value in scripts.items() if isinstance(value, str)
    }
    wanted = [f"pre{name}", name, f"post{name}"]
    return [Target(label, (name,), expand(wanted, table, lambda line: _js_calls(line, table)))]


def _script_name(manager: str, args: list[str]) -> str | None:
    if not args:
        return None
    first = args[0]
    if first in ("run", "run-script", "rum", "urn"):
        return args[1] if len(args) > 1 else None
    if first in ("test", "t", "tst"):
        return "test" if manager != "bun" else None  # `bun test` is bun's own runner
    if manager in ("yarn", "pnpm") and first not in _JS_BUILTINS:
        return first
    return None


def _js_calls(line: str, table: dict[str, Any]) -> list[str]:
    """Scripts a package.json script runs: `npm run lint`, `yarn test`, `run-s lint test:*`."""
    found: list[str] = []
    for words in commands(line):
        if words[0] in _JS_MANAGERS:
            name = _script_name(words[0], [w for w in words[1:] if not w.startswith("-")])
            found += [name] if name else []
        elif words[0] in ("run-s", "run-p", "npm-run-all"):
            for pattern in (w for w in words[1:] if not w.startswith("-")):
                prefix = pattern.rstrip("*")
                glob = pattern.endswith("*")
                found += [k for k in table if k == pattern or (glob and k.startswith(prefix))]
    return found


def _just(args: list[str], files: ProjectFiles, budget: Budget | None) -> list[Target]:
    names = [arg for arg in args if not arg.startswith("-")]
    label = " ".join(["just", *names[:1]])
    if budget is None:
        return [Target(label, tuple(names[:1]), "")]
    rel = files.first_file(_JUSTFILES)
    if rel is None or not budget.take(label):
        return [Target(label, tuple(names[:1]), "")]
    recipes = just_recipes(files.text(rel) or "")
    wanted = [n for n in names if n in recipes][:1] or ([] if names else list(recipes)[:1])
    return [Target(label, tuple(names[:1]), expand(wanted, recipes, lambda _: []))]


def _task(args: list[str], files: ProjectFiles, budget: Budget | None) -> list[Target]:
    names = [arg for arg in args if not arg.startswith("-") and "=" not in arg] or ["default"]
    label = " ".join(["task", *names])
    if budget is None:
        return [Target(label, tuple(names), "")]
    rel = files.first_file(_TASKFILES)
    if rel is None or not budget.take(label):
        return [Target(label, tuple(names), "")]
    tasks = taskfile_tasks(files.text(rel) or "")
    calls = re.compile(r"task:\s*['\"]?([\w:.-]+)")
    return [Target(label, tuple(names), expand(names, tasks, calls.findall))]


def _rake(args: list[str], files: ProjectFiles, budget: Budget | None) -> list[Target]:
    names = [arg for arg in args if not arg.startswith("-") and "=" not in arg]
    label = " ".join(["rake", *names])
    if budget is None or names:
        return [Target(label, tuple(names), "")]  # a named task: its name says what it is
    rel = files.first_file(_RAKEFILES)
    if rel is None or not budget.take(label):
        return [Target(label, (), "")]
    # The default task: the Rakefile as a whole (its test tasks are what `rake` runs in
    # nearly every gem: `task default: :spec`).
    return [Target(label, (), files.text(rel) or "", shell=False)]


def _pyproject(tool: str, table: Callable[[str], list[str]]) -> Callable[..., list[Target]]:
    """hatch run [env:]NAME, pdm run NAME, poe NAME: a script of a pyproject.toml table."""

    def follow(args: list[str], files: ProjectFiles, budget: Budget | None) -> list[Target]:
        words = [arg for arg in args if not arg.startswith("-")]
        if tool in ("hatch", "pdm"):
            if words[:1] != ["run"] or len(words) < 2:
                return []
            words = words[1:]
        if not words:
            return []
        env, _, name = words[0].rpartition(":")
        label = f"{tool} run {words[0]}" if tool != "poe" else f"poe {name}"
        if budget is None:
            return [Target(label, (name,), "")]
        tables = files.toml_tables("pyproject.toml") if "pyproject.toml" in files.files else {}
        bodies = [tables[t] for t in table(env or "default") if t in tables]
        if not bodies or not budget.take(label):
            return [Target(label, (name,), "")]
        return [Target(label, (name,), "\n".join(toml_value(body, name) for body in bodies))]

    return follow


_FOLLOW: dict[str, Callable[[list[str], ProjectFiles, Budget | None], list[Target]]] = {
    "make": _make,
    "gmake": _make,
    **{manager: partial(_scripts, manager=manager) for manager in _JS_MANAGERS},
    "just": _just,
    "task": _task,
    "rake": _rake,
    "hatch": _pyproject("hatch", lambda env: [f"tool.hatch.envs.{env}.scripts"]),
    "pdm": _pyproject("pdm", lambda _: ["tool.pdm.scripts"]),
    "poe": _pyproject("poe", lambda _: ["tool.poe.tasks"]),
}


# --- words ----------------------------------------------------------------------------------


def _bare(words: list[str]) -> list[str]:
    """The command without what only sets it up: VAR=x, sudo, env, `poetry run`, ${PREFIX}."""
    while words:
        first = words[0]
        if _ASSIGNMENT.match(first):
            words = words[1:]
            continue
        if first.startswith("$"):
            stripped = _EXPANSION.sub("", first)
            if stripped == first or not stripped:
                return [] if not stripped else words
            words = [stripped, *words[1:]]
            continue
        sub = _WRAPPERS.get(first)
        if sub is None:
            break
        rest = words[1:]
        if sub:
            if rest[:1] and rest[0] in sub:
                rest = rest[1:]
            else:
                break  # `poetry install`, `bundle install`: not a wrapper here
        words = _skip_options(rest)
    return words


def _skip_options(words: list[str]) -> list[str]:
    index = 0
    while index < len(words) and words[index].startswith("-"):
        index += 1
    return words[index:]


def _inside(path: str) -> str | None:
    """A path as CI names it, relative to the project root; None if it could leave it."""
    if not path or path.startswith(("/", "~", "$")) or "\\" in path:
        return None
    rel = posixpath.normpath(path)
    if rel == "." or rel.startswith("../") or rel == "..":
        return None
    return rel
