"""Rebuild the evaluation sets' documents from Debian man pages installed on this machine.

    python bench/data/eval/extract.py          # rewrites bench/data/eval/<set>/docs/*

The rendered texts are committed next to this script (so the benchmark does not depend on
the packages installed where it runs); this script says exactly where each came from.
Every page is rendered with man-db (``man -l``, 90 columns, no hyphenation or justification)
and ``col -bx``; Markdown copies turn each man section title into a ``##`` heading. No
text here was written for Hearth: the questions in ``questions.json`` are ours, the
documents are the packages' own (licenses: see LICENSES.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAN = Path("/usr/share/man")

#: set name -> (man page file under /usr/share/man, output name); .md gets Markdown headings
SETS: dict[str, list[tuple[str, str]]] = {
    "en_man": [
        (f"man1/{p}.1.gz", f"{p}.{'md' if i % 2 else 'txt'}")
        for i, p in enumerate(
            "sort uniq cut tr find xargs grep sed tar gzip xz ps kill watch date du df chmod ln cp ssh less".split()
        )
    ],
    "de_man": [
        (f"de/{sec}/{p}.gz", f"{p}.{'md' if i % 2 else 'txt'}")
        for i, (sec, p) in enumerate(
            [
                ("man8", "apt-get.8"),
                ("man8", "apt-cache.8"),
                ("man8", "apt-mark.8"),
                ("man8", "apt.8"),
                ("man5", "sources.list.5"),
                ("man5", "apt_preferences.5"),
                ("man1", "dpkg.1"),
                ("man1", "dpkg-query.1"),
                ("man1", "dpkg-deb.1"),
                ("man8", "adduser.8"),
                ("man8", "deluser.8"),
                ("man8", "useradd.8"),
                ("man1", "passwd.1"),
                ("man1", "ps.1"),
                ("man1", "free.1"),
                ("man1", "kill.1"),
                ("man1", "pgrep.1"),
                ("man1", "watch.1"),
                ("man1", "xz.1"),
                ("man8", "sysctl.8"),
                ("man1", "update-alternatives.1"),
                ("man8", "start-stop-daemon.8"),
                ("man8", "run-parts.8"),
            ]
        )
    ],
    "zh_mixed": [
        (f"{lang}/{sec}/{p}.gz", f"{lang}-{p}.{'md' if i % 2 else 'txt'}")
        for i, (lang, sec, p) in enumerate(
            [
                ("zh_CN", "man1", "man.1"),
                ("zh_CN", "man1", "apropos.1"),
                ("zh_CN", "man1", "whatis.1"),
                ("zh_CN", "man1", "manpath.1"),
                ("zh_CN", "man5", "manpath.5"),
                ("zh_CN", "man8", "mandb.8"),
                ("zh_CN", "man8", "catman.8"),
                ("zh_CN", "man1", "lexgrog.1"),
                ("zh_CN", "man1", "zsoelim.1"),
                ("zh_CN", "man1", "manconv.1"),
                ("zh_CN", "man8", "accessdb.8"),
                ("zh_CN", "man1", "passwd.1"),
                ("zh_CN", "man5", "shadow.5"),
                ("zh_CN", "man5", "gshadow.5"),
                ("zh_CN", "man8", "chpasswd.8"),
                ("zh_CN", "man8", "chgpasswd.8"),
                ("zh_CN", "man8", "newusers.8"),
                ("zh_CN", "man8", "pwck.8"),
                ("zh_CN", "man8", "useradd.8"),
                ("zh_TW", "man8", "useradd.8"),
                ("zh_TW", "man8", "usermod.8"),
                ("zh_TW", "man5", "passwd.5"),
                ("zh_TW", "man8", "groupadd.8"),
                ("zh_TW", "man8", "chpasswd.8"),
            ]
        )
    ],
}


def render(page: Path) -> str:
    env = {**os.environ, "LANG": "C.UTF-8", "MANWIDTH": "90"}
    out = subprocess.run(["man", "--nj", "--nh", "-l", str(page)], env=env, capture_output=True, check=True)
    text = subprocess.run(["col", "-bx"], input=out.stdout, capture_output=True, check=True).stdout.decode()
    lines = text.splitlines()[1:]  # the running header ("USERADD(8)   ...   USERADD(8)")
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[:-1]).strip() + "\n"  # the running footer (version, date)


def markdown(text: str) -> str:
    """Unindented lines are man section titles; everything else is dedented body text."""
    out = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            out.append(f"\n## {line.strip()}\n")
        else:
            out.append(re.sub(r"^\s+", "", line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def main() -> None:
    for name, pages in SETS.items():
        folder = HERE / name / "docs"
        folder.mkdir(parents=True, exist_ok=True)
        for page, out_name in pages:
            text = render(MAN / page)
            (folder / out_name).write_text(
                markdown(text) if out_name.endswith(".md") else text, encoding="utf-8"
            )
        print(name, len(pages), "documents")


if __name__ == "__main__":
    main()
