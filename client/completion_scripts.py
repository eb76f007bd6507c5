"""`pm completion bash|zsh|fish`: the script a shell sources, which asks
`pm __complete -- WORD… CURRENT` (client.completion) on every Tab."""

from __future__ import annotations

import os
import sys

_BASH = """\
# pm completion for bash: eval "$(pm completion bash)" in ~/.bashrc
_pm_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(%(pm)s __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -o bashdefault -F _pm_complete pm
"""

_ZSH = """\
#compdef pm
# pm completion for zsh: eval "$(pm completion zsh)" in ~/.zshrc, after compinit
_pm() {
    local -a candidates
    candidates=(${(f)"$(%(pm)s __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -a candidates
    else
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _pm "$@"
else
    compdef _pm pm
fi
"""

_FISH = """\
# pm completion for fish: pm completion fish > ~/.config/fish/completions/pm.fish
function __pm_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l candidates (%(pm)s __complete -- $words (commandline -ct) 2>/dev/null)
    if test (count $candidates) -gt 0
        printf '%%s\\n' $candidates
    else
        __fish_complete_path (commandline -ct)
    end
end
complete -c pm -f -a '(__pm_complete)'
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def _pm_command() -> str:
    """This very `pm` when run as the console script (so completion works off PATH too)."""
    import shlex

    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "pm" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    return "command pm"


def script(shell: str) -> str:
    return SCRIPTS[shell] % {"pm": _pm_command()}
