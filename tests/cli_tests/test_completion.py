"""Shell completion through click's own protocol, as a shell calls it: the installed `gensweep`
with _GENSWEEP_COMPLETE set (README, "Shell completion")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GENSWEEP = str(Path(sys.executable).parent / "gensweep")


def _complete(**variables: str) -> str:
    result = subprocess.run([GENSWEEP], env={**os.environ, **variables}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("shell, marker", [
    ("bash", "complete -o nosort -F _gensweep_completion gensweep"),
    ("zsh", "#compdef gensweep"),
    ("fish", "complete --no-files --command gensweep"),
])
def test_the_completion_script_is_emitted(shell, marker):
    script = _complete(_GENSWEEP_COMPLETE=f"{shell}_source")
    assert marker in script and "_GENSWEEP_COMPLETE" in script


def test_completing_a_command_name():
    # What bash's function asks once the script is sourced and `gensweep va<TAB>` is typed.
    assert _complete(_GENSWEEP_COMPLETE="bash_complete", COMP_WORDS="gensweep va", COMP_CWORD="1") == "plain,validate\n"
    assert "plain,schema" in _complete(_GENSWEEP_COMPLETE="bash_complete", COMP_WORDS="gensweep s", COMP_CWORD="1")
