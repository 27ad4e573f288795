"""Secrets out of everything pathgen stores or prints: bearer tokens, API keys, URL credentials.

Why here and not at each call site: a key reaches text by many roads (a server that echoes the
Authorization header in its error body, a key typed where an environment variable's *name* was
asked for, ``http://user:KEY@host`` in a base URL), and text leaves by many doors (the journal, the
run's config.yaml, CLI errors, summaries). Every door calls :func:`redact` (free text) or
:func:`redact_url` (a URL that is stored); the credentials themselves stay in memory only, where the
HTTP client turns them into a header (:func:`url_auth_header`).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# Order matters: a whole header value first (it may be "Bearer <token>", "Basic <b64>", a bare
# key), then the remaining "Bearer <token>" anywhere, then named values, then bare key shapes.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: <value>  /  "authorization": "<value>"  /  'Authorization'='<value>'
    (
        re.compile(r"""(?i)(\b(?:proxy-)?authorization\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\r\n,}]+"""),
        r"\1" + MASK,
    ),
    # Bearer <token> in any text (a token has a digit or a symbol, or 16+ letters: "bearer of" is prose)
    (
        re.compile(r"(?i)\b(bearer)(\s+)(?:(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]+|[A-Za-z]{16,})"),
        r"\1\2" + MASK,
    ),
    # api_key=..., "api-key": "...", x-api-key: ..., access_token=..., password=..., secret: ...
    (
        re.compile(
            r"""(?i)(\b(?:x-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|"""
            r"""secret[_-]?key|password|passwd)\\?["']?\s*[:=]\s*\\?["']?)[^"'\\&\s,;}]+"""
        ),
        r"\1" + MASK,
    ),
    # user:pass@ (or token@) in a URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#'\"<>]+@"), r"\1" + MASK + "@"),
    # Common key shapes: OpenAI/Anthropic sk-..., Hugging Face hf_..., GitHub, GitLab, Slack, AWS, Google.
    (
        re.compile(
            r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|"
            r"github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|xox[abpsr]-[A-Za-z0-9-]{10,}|"
            r"AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35})"
        ),
        MASK,
    ),
]
# A cheap pre-check: text (lower-cased) with none of these substrings cannot match any pattern
# above; the journal runs every stored answer through redact, and most answers stop here (~10 µs
# for a long description, against ~140 µs for the patterns).
_TRIGGERS = (
    "authorization", "bearer", "api_key", "api-key", "apikey", "_token", "-token", "secret", "passw",
    "sk-", "hf_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "akia", "aiza",
)  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Case-sensitive, as the issuers write them (HF_TOKEN is a name; hf_AbC... is a token).
_KEY_PREFIXES = ("sk_", "hf_", "ghp_", "gho_", "ghs_", "github_pat_", "xox", "AKIA", "AIza")


def redact(text: str) -> str:
    """``text`` with bearer tokens, header values, named keys, key shapes and URL credentials masked."""
    if not text:
        return text
    low = text.lower()
    if not any(t in low for t in _TRIGGERS) and not ("://" in low and "@" in low):
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_url(url: str) -> str:
    """The URL without its ``user:password@`` part (what may be stored: config.yaml, summaries)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def url_auth_header(urls: str | list[str]) -> dict[str, str]:
    """``{"Authorization": "Basic ..."}`` from the ``user:password@`` of the base URL(s), else ``{}``.

    This is what curl and httpx do with credentials in a URL; pathgen's own HTTP client ignores
    the userinfo of a URL, so the generator adds this header from the in-memory URL (config.yaml
    keeps the URL without them). One header serves every URL, so they must agree.
    """
    found: set[tuple[str, str]] = set()
    for url in [urls] if isinstance(urls, str) else urls:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            found.add((unquote(parts.username or ""), unquote(parts.password or "")))
        else:
            found.add(("", ""))
    if len(found) > 1:  # one header goes to every URL: never send one host's credentials to another
        raise ValueError(
            "the base URLs carry different credentials (user:password@); give all of them the same"
        )
    user, password = next(iter(found), ("", ""))
    if not user and not password:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def looks_like_secret(value: str) -> bool:
    """Whether a string given as an environment variable's NAME is more likely the key itself.

    True when it is not a valid variable name, starts like a known key, or is long and random-looking
    (upper case, lower case and digits mixed; or 32+ characters without a word break).
    """
    if not _ENV_NAME.fullmatch(value):
        return True
    if value.startswith(_KEY_PREFIXES) and len(value) >= 16:
        return True
    mixed = (
        any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() for c in value)
    )
    return (len(value) >= 20 and mixed) or (len(value) >= 32 and "_" not in value)
