"""The app's languages: gettext catalogs (``spp_viz/locales/<lang>/LC_MESSAGES/spp_viz.po``, managed with Babel),
chosen per session.

The language is a context variable, not a process-wide ``gettext.install()``: one server serves a class, and two
students on it may read two languages at once. A Streamlit run sets it (``set_language``) for its own thread; work
handed to another thread takes the caller's language with ``contextvars.copy_context()``; ``use`` sets it for a block.

    from spp_viz.i18n import _, ngettext
    _("{channels} channels").format(channels=k)     # named placeholders: a translator may reorder them
    ngettext("{n} photo", "{n} photos", n).format(n=n)
    TITLE = lazy_gettext("Feature maps")            # module level: translated where it is read, not at import
    OPTIONS = {N_("max pooling"): "max"}             # a key kept as is, shown as _(key)

Numbers and dates go through Babel in the session's locale (``number``, ``percent``, ``datetime``). Pictures with
text in them use ``font``: NanumGothic (SIL Open Font License), shipped by the ``koreanize-matplotlib`` package, so
Hangul is drawn offline and from the wheel.
"""

from __future__ import annotations

import functools
import gettext as _gettext
import importlib.util
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime as _datetime
from decimal import Decimal
from pathlib import Path

from babel import numbers as _numbers
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_time as _format_time
from babel.support import LazyProxy

DOMAIN = "spp_viz"
LOCALES = Path(__file__).resolve().parent / "locales"
LANGUAGES = {"en": "English", "ko": "한국어"}  # each in its own language: what the sidebar's switch shows
BABEL_LOCALES = {"en": "en_US", "ko": "ko_KR"}
LANG_ENV = "SPP_VIZ_LANG"  # the server's language for browsers that send none (default: en)

_language: ContextVar[str | None] = ContextVar("spp_viz_language", default=None)


def default_language() -> str:
    """``SPP_VIZ_LANG`` when it names a language of the app, else English."""
    return supported(os.environ.get(LANG_ENV, "")) or "en"


def supported(tag: str | None) -> str | None:
    """The app's language for a language tag (``ko``, ``ko-KR``, ``ko_KR``, ``KO``), or None for any other."""
    base = (tag or "").strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


def negotiate(browser: str | None) -> str:
    """The language for a browser that sends ``browser`` (``navigator.language``: "ko-KR", "en-US", or None)."""
    if browser:
        return "ko" if supported(browser) == "ko" else "en"
    return default_language()


def language() -> str:
    """This context's language: the one ``use`` set, else the server's default."""
    return _language.get() or default_language()


def set_language(lang: str) -> None:
    """Make ``lang`` this context's language (a Streamlit run sets it first, for the rest of the run)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: {', '.join(LANGUAGES)}")
    _language.set(lang)


@contextmanager
def use(lang: str) -> Iterator[None]:
    """``lang`` inside the block, the previous language after it."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: {', '.join(LANGUAGES)}")
    token = _language.set(lang)
    try:
        yield
    finally:
        _language.reset(token)


@functools.cache
def translations(lang: str) -> _gettext.NullTranslations:
    """The catalog of ``lang``: the compiled ``.mo`` (what the wheel ships, built by ``python -m spp_viz.i18n``) when
    it is as new as the ``.po``, else the ``.po`` compiled in memory (a checkout needs no build step). English is
    the source language: no catalog."""
    if lang == "en":
        return _gettext.NullTranslations()
    folder = LOCALES / lang / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with open(mo, "rb") as f:
            return _gettext.GNUTranslations(f)
    return _gettext.GNUTranslations(io.BytesIO(compile_po(po)))


def compile_po(po: Path) -> bytes:
    """A ``.po`` file as ``.mo`` bytes (Babel's compiler; fuzzy entries left out, as ``pybabel compile`` does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po, "rb") as f:
        catalog = read_po(f)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def gettext(message: str) -> str:
    """``message`` in this context's language."""
    return translations(language()).gettext(message)


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a message for the count ``n`` (Korean has one form; English two)."""
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks ``message`` for the catalog and returns it unchanged: a key that is also a message (a menu's option),
    translated where it is shown (``_(key)``)."""
    return message


_FILLED: dict[str, tuple[str, dict]] = {}


def filled(template: str, **values) -> str:
    """``template`` (an English message, marked with ``N_``) filled in English, for the CLI and the files; it is
    remembered, so that ``translate`` gives the same words in the reader's language, with the same values. For
    module-level constants (the paper's quoted sentences, the class questions): every call is kept for good."""
    text = template.format(**values)
    _FILLED[text] = (template, values)
    return text


def translate(text: str) -> str:
    """An English message or a ``filled`` one in the reader's language (itself where the catalog lacks it)."""
    template, values = _FILLED.get(text, (text, None))
    return gettext(template) if values is None else gettext(template).format(**values)


def pgettext(context: str, message: str) -> str:
    """``message`` in this context's language, told apart by ``context`` from the same English with another meaning
    ("Class": a category of ImageNet, or the teacher's class)."""
    return translations(language()).pgettext(context, message)


def lazy_gettext(message: str) -> LazyProxy:
    """A module-level constant's message, translated each time it is read (in the reader's language)."""
    return LazyProxy(gettext, message, enable_cache=False)


def babel_locale(lang: str | None = None) -> str:
    return BABEL_LOCALES[lang or language()]


def number(value: float, digits: int = 0) -> str:
    """A number in this language's way of writing it: grouping, decimal sign, ``digits`` decimals. Rounded as Python's
    own ``f"{value:,.{digits}f}"`` rounds (Babel alone rounds the shortest decimal text half-even: 0.4505 to three
    decimals gives 0.450 there, 0.451 in Python), so a number reads the same in every language and in the CLI."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return _numbers.format_decimal(Decimal(f"{value:.{digits}f}"), format=pattern, locale=babel_locale())


def percent(fraction: float, digits: int = 0) -> str:
    """A fraction as a percentage (0.25 -> "25%") in this language's way of writing it, rounded as Python's
    ``f"{fraction:.{digits}%}"`` rounds."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    rounded = Decimal(f"{fraction * 100:.{digits}f}") / 100
    return _numbers.format_percent(rounded, format=pattern, locale=babel_locale())


def datetime(moment: _datetime) -> str:
    """A date and time, medium length, in this language's way of writing it."""
    return _format_datetime(moment, format="medium", locale=babel_locale())


def date(moment: _datetime) -> str:
    """A date, medium length ("Dec 7, 2026", "2026. 12. 7.")."""
    return _format_date(moment, format="medium", locale=babel_locale())


def time_of_day(moment: _datetime) -> str:
    """Hours and minutes of the moment's own time zone, in this language's short form ("9:05 PM", "오후 9:05")."""
    return _format_time(moment, format="short", tzinfo=moment.tzinfo, locale=babel_locale())


def font_path() -> Path | None:
    """NanumGothic's file (Hangul and Latin), from the installed ``koreanize-matplotlib`` without importing it (its
    import changes matplotlib's settings for the whole process); None where it is not installed."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "fonts" / "NanumGothic.ttf"
        if path.is_file():
            return path
    return None


@functools.cache
def font(size: int = 13):
    """A PIL font that draws Hangul (NanumGothic at ``size`` pixels); PIL's own where NanumGothic is missing."""
    from PIL import ImageFont

    path = font_path()
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)


def main() -> None:
    """``python -m spp_viz.i18n``: compile every catalog's ``.po`` into its ``.mo`` (what the wheel's build runs)."""
    for po in sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        po.with_suffix(".mo").write_bytes(compile_po(po))
        print(f"compiled {po.with_suffix('.mo')}")


if __name__ == "__main__":
    main()
