"""Pull code out of a model's answer, as NaturalCodeBench's scorer does.

Order: the first fenced block tagged with the language (```python / ```java, any case), then
the first untagged fenced block, then the first block with another tag (answers are sometimes
mislabelled), then, with no fence at all, the text from the first line that
starts like code (import, from, def, class, public ...). Java answers keep every block tagged
java, since classes are often split across blocks.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([\w+#-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_CODE_START = {
    "python": re.compile(r"^(?:import |from |def |class |@|async def )", re.M),
    "java": re.compile(r"^(?:import |public |class |interface |enum |final |abstract )", re.M),
}


def extract_code(text: str, language: str = "python") -> str:
    """The program in `text` (see module docstring); '' when nothing looks like code."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    tagged = [body for tag, body in blocks if tag == language.lower()]
    if tagged:
        return "\n".join(tagged).strip("\n") + "\n" if language == "java" else tagged[0]
    untagged = [body for tag, body in blocks if tag == ""]
    if untagged:
        return untagged[0]
    if blocks:  # a block with the wrong language tag still holds the answer
        return blocks[0][1]
    match = _CODE_START.get(language, _CODE_START["python"]).search(text)
    return text[match.start() :] if match else ""
