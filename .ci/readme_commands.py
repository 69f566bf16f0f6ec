"""Print the commands of a Markdown file's first N fenced ``bash`` blocks, one block a line.

``.ci/run`` runs the README's first two blocks with it, so CI runs what a newcomer reads;
``tests/test_docs.py`` checks what it prints. Usage: ``python .ci/readme_commands.py README.md 2``.
"""

from __future__ import annotations

import pathlib
import re
import sys

FENCE = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def first_commands(markdown: str, count: int) -> list[str]:
    """The first ``count`` bash blocks, each a one-line command (comments and blank lines dropped)."""
    blocks = []
    for body in FENCE.findall(markdown)[:count]:
        lines = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
        if len(lines) != 1:
            raise SystemExit(f"a README set-up block must hold exactly one command, got {lines!r}")
        blocks.append(lines[0])
    if len(blocks) != count:
        raise SystemExit(f"expected {count} fenced bash blocks, found {len(blocks)}")
    return blocks


if __name__ == "__main__":
    path, count = sys.argv[1], int(sys.argv[2])
    print("\n".join(first_commands(pathlib.Path(path).read_text(), count)))
