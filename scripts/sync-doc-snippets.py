#!/usr/bin/env python3
"""Copies the code regions of tests/docs/test_doc_snippets.cpp into the docs.

A region "// [snippet:NAME]" ... "// [/snippet]" replaces the ```cpp block that follows each
"<!-- snippet:NAME -->" marker in docs/*.md. The test `docs: every snippet in docs/ is the code
compiled here` fails when the two drift apart; this script is the fix. Developer tool only: the
build and the tests never run Python.
"""
import pathlib
import re
import textwrap

root = pathlib.Path(__file__).resolve().parent.parent
source = (root / "tests/docs/test_doc_snippets.cpp").read_text()
snippets = {
    m.group(1): textwrap.dedent(m.group(2)).rstrip() + "\n"
    for m in re.finditer(r"// \[snippet:([\w-]+)\]\n(.*?)\n\s*// \[/snippet\]", source, re.S)
}
for doc in sorted((root / "docs").glob("*.md")):
    text = doc.read_text()
    new = re.sub(
        r"(<!-- snippet:([\w-]+) -->\n```cpp\n)(.*?)(```)",
        lambda m: m.group(1) + snippets[m.group(2)] + m.group(4),
        text,
        flags=re.S,
    )
    if new != text:
        doc.write_text(new)
        print(f"updated {doc.relative_to(root)}")
