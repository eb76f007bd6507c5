"""Remote URLs as pm-agent stores them: insteadOf applied, credentials gone, and hosted
repositories normalised to https://host/owner/repo whatever form the config used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from daemon.domain.projects.gitconfig import ConfigEntry
from daemon.domain.projects.model import Remote

_HOSTED_SCHEMES = frozenset({"https", "http", "ssh", "git", "git+ssh", "ssh+git"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_HELPER = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)::(.*)", re.DOTALL)
_SCP = re.compile(r"(?:.*@)?([^:/@]+):(.*)", re.DOTALL)  # [user@]host:path (user may hold ':')
# Whatever ends in "@" (or a percent-encoded one) within one path segment or word is user
# information: `user:token@`, `token@`, `git@`. Removed wherever it appears, whatever the form
# around it (helpers' addresses, ext:: command lines, odd schemes, paths).
_USERINFO = re.compile(r"[^/\s]*(?:@|%40)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _scrub(text: str) -> str:
    return _USERINFO.sub("", text)


def _hosted(host: str, path: str, port: str = "") -> Remote:
    segments = [s for s in _scrub(path).strip("/").removesuffix(".git").split("/") if s]
    host = host.lower()
    where = f"{host}:{port}" if port not in {"", "80", "443"} else host
    return Remote(
        name="",
        url="/".join([f"https://{where}", *segments]),
        owner=segments[0] if len(segments) >= 2 else None,  # one segment is a repo, not owner
        host=host,
    )


def _split_hostport(hostport: str) -> tuple[str, str]:
    """(host, port); a port that is not a number is no port (it may be a token)."""
    if hostport.startswith("["):  # an IPv6 literal
        host, _, port = hostport.partition("]")
        host, port = host + "]", port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    return host, port if port.isdigit() else ""


def _parse(url: str) -> Remote:
    if m := _HELPER.fullmatch(url):
        # A remote helper (`transport::address`): kept, minus any credentials inside.
        return Remote(name="", url=f"{m.group(1)}::{_scrub(m.group(2))}")
    if m := _SCHEME.fullmatch(url):
        scheme, rest = m.group(1).lower(), m.group(2)
        end = min((p for p in (rest.find(c) for c in "/?#") if p >= 0), default=len(rest))
        hostport = _scrub(rest[:end])
        path = re.split(r"[?#]", rest[end:], maxsplit=1)[0]  # a query may carry a token too
        if scheme == "file":
            return Remote(name="", url=f"file://{hostport}{_scrub(path)}")
        host, port = _split_hostport(hostport)
        if scheme not in _HOSTED_SCHEMES or not host:
            where = f"{host}:{port}" if port else host
            return Remote(
                name="", url=f"{scheme}://{where}{_scrub(path)}", host=host.lower() or None
            )
        # An ssh or git:// port says nothing about where the web page is.
        return _hosted(host, path, port if scheme in {"http", "https"} else "")
    colon, slash = url.find(":"), url.find("/")
    drive = colon == 1 and url[2:3] == "/"  # C:\… (backslashes made slashes) is a Windows path
    if colon > 0 and (slash < 0 or colon < slash) and not drive and (m := _SCP.fullmatch(url)):
        return _hosted(m.group(1), m.group(2))
    return Remote(name="", url=_scrub(url))  # a local path


def normalise_remote(url: str, insteadof: Mapping[str, str] | None = None) -> Remote:
    """A remote URL as stored: insteadOf applied, credentials gone, https://host/owner/repo.

    `insteadof` maps a prefix to its replacement (git's `url.<base>.insteadOf = <prefix>`); the
    longest matching prefix wins. Local paths and file:// URLs stay as given, minus user
    information. A URL is cut at its first control character (git refuses such a URL, and
    what follows a newline may be another one, with credentials); backslashes count as
    slashes (`https:\\\\user:token@host\\…`). `name` is left empty for the caller.
    """
    url = url.strip()
    rules = insteadof or {}
    prefixes = [p for p in rules if p and url.startswith(p)]
    if prefixes:
        longest = max(prefixes, key=len)
        url = rules[longest] + url[len(longest) :]
    url = _CONTROL.split(url, maxsplit=1)[0].replace("\\", "/")
    remote = _parse(url)
    # Whatever the form took above, the stored URL holds no user information.
    return msgspec.structs.replace(remote, url=_scrub(remote.url))


def remotes_from_config(repo: list[ConfigEntry], every: list[ConfigEntry]) -> list[Remote]:
    insteadof = {v: ss for s, ss, n, v in every if s == "url" and ss and n == "insteadof"}
    urls: dict[str, str] = {}
    for section, sub, name, value in repo:
        if section == "remote" and sub is not None and name == "url" and value:
            urls.setdefault(sub, value)  # git fetches from the first url
    return [
        msgspec.structs.replace(normalise_remote(url, insteadof), name=name)
        for name, url in urls.items()
    ]
