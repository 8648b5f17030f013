"""What a student or teacher typed, shown as typed: never read as Markdown, HTML, a link or an emoji code.

File names, zip folder names, class titles, codes from a link, network names and weights metadata reach the pages
inside Markdown sentences. ``md`` escapes every character Markdown, Streamlit's extensions (``:emoji:``,
``:red[...]``, ``$math$``) give a meaning to, and breaks what GitHub-style autolinks look for, so ``[x](http://a)``
reads as those characters on screen (an invisible word joiner after "http"), not a link.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:=\"'])")
# GitHub's autolinks (a URL, www., an e-mail address) are found in the text after its escapes are read, so no escape
# stops them: an invisible word joiner inside each one does.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|www|mailto)(?=[:.])|(?<=@)")
JOINER = "\u2060"


def md(text: object) -> str:
    """``text`` escaped for use inside ``st.markdown``, ``st.caption``, ``st.error`` and the like."""
    text = " ".join(str(text).replace("\0", "\ufffd").split())  # NUL: what every Markdown reader shows for it
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + JOINER, text)
    return _SPECIAL.sub(r"\\\1", text)
