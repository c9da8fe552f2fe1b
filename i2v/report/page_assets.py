"""The report page's stylesheet and script, and the Content-Security-Policy that pins the page to them.

Both are package files beside this module (``page.css``, ``page.js``), inlined into the
page, which is pinned to them by hashes in its Content-Security-Policy: no other script
or style runs there, whatever the data holds. The script reads the rows from the page's
JSON block and builds everything with DOM calls and ``textContent``; it never parses data
as HTML.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

STYLE = resources.files(__package__).joinpath("page.css").read_text(encoding="utf-8")
SCRIPT = resources.files(__package__).joinpath("page.js").read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: Only the page's own script and style run; media may come from the report's folder or the web.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_csp_hash(SCRIPT)}",
        f"style-src {_csp_hash(STYLE)}",
        "img-src 'self' file: http: https: data: blob:",
        "media-src 'self' file: http: https: data: blob:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
