"""Every string a person sees on a zh-hans page is in Chinese, once (issue #19).

The catalogue is never regenerated in place (eight people append to it), so
the check runs `makemessages` on a temporary copy of the sources and reads
what it would have written: an msgid used in the code but missing from the
catalogue comes out untranslated, a changed one comes out fuzzy. Labels that
gettext cannot see (model fields without a verbose_name, admin columns named
after methods) are checked by asking Django for them in zh-hans.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.admin.utils import label_for_field
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = Path("locale/zh_Hans/LC_MESSAGES/django.po")
# Words that stay as they are in a Chinese back office.
KEPT = {"ID", "SHA-256", "IP", "HTTP", "GET", "POST", "PIN", "TOTP", "JSON", "PDF", "XLSX"}


def _unquote(text: str) -> str:
    return str(ast.literal_eval(text))


def parse_po(text: str) -> list[dict[str, object]]:
    """The entries of a .po file: msgid, msgstr (plural forms joined), flags, obsolete."""
    entries: list[dict[str, object]] = []
    entry: dict[str, object] | None = None
    field = ""
    flags: list[str] = []
    for line in text.splitlines():
        if line.startswith("#,"):
            flags = [flag.strip() for flag in line[2:].split(",")]
        elif line.startswith("#~"):
            continue
        elif line.startswith("msgid "):
            entry = {"msgid": _unquote(line[6:]), "msgstr": [], "flags": flags}
            entries.append(entry)
            field, flags = "msgid", []
        elif line.startswith("msgid_plural ") and entry is not None:
            field = "plural"
        elif line.startswith("msgstr") and entry is not None:
            value = line.split(" ", 1)[1]
            entry["msgstr"].append(_unquote(value))  # type: ignore[attr-defined]
            field = "msgstr"
        elif line.startswith('"') and entry is not None:
            if field == "msgid":
                entry["msgid"] = str(entry["msgid"]) + _unquote(line)
            elif field == "msgstr":
                strings = entry["msgstr"]
                strings[-1] += _unquote(line)  # type: ignore[index]
    return [e for e in entries if e["msgid"]]


def repeated(text: str) -> bool:
    """True when the text is one sentence printed two or more times in a row."""
    return any(len(text) % n == 0 and text == text[: len(text) // n] * n for n in (2, 3, 4) if text)


@pytest.fixture(scope="module")
def regenerated_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    if shutil.which("xgettext") is None:
        pytest.fail("GNU gettext (xgettext) is missing: make system-packages installs it")
    copy = tmp_path_factory.mktemp("sources")
    for name in ("apps", "templates", "remotebank", "locale", "static"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-location", "-v0"],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return parse_po((copy / CATALOGUE).read_text(encoding="utf-8"))


def test_every_message_of_the_code_is_translated_once(regenerated_catalogue: list[dict[str, object]]) -> None:
    untranslated = [e["msgid"] for e in regenerated_catalogue if not all(e["msgstr"])]  # type: ignore[arg-type]
    fuzzy = [e["msgid"] for e in regenerated_catalogue if "fuzzy" in e["flags"]]  # type: ignore[operator]
    doubled = [e["msgid"] for e in regenerated_catalogue if any(repeated(s) for s in e["msgstr"])]  # type: ignore[attr-defined]
    assert untranslated == []
    assert fuzzy == []
    assert doubled == []


def test_the_committed_catalogue_has_no_duplicates_or_doubled_texts() -> None:
    entries = parse_po((ROOT / CATALOGUE).read_text(encoding="utf-8"))
    ids = [e["msgid"] for e in entries]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []  # type: ignore[type-var]
    assert [e["msgid"] for e in entries if any(repeated(s) for s in e["msgstr"])] == []  # type: ignore[attr-defined]


def test_parse_po_sees_untranslated_fuzzy_and_doubled_entries() -> None:
    sample = '#, fuzzy\nmsgid "A"\nmsgstr "甲"\n\nmsgid "B"\nmsgstr ""\n\nmsgid "C"\nmsgstr ""\n"丙。丙。"\n'
    entries = parse_po(sample)
    assert [e["flags"] for e in entries] == [["fuzzy"], [], []]
    assert [e["msgstr"] for e in entries] == [["甲"], [""], ["丙。丙。"]]
    assert repeated("丙。丙。") and not repeated("丙。")


def _foreign(label: str) -> bool:
    words = re.findall(r"[A-Za-z][A-Za-z0-9-]*", label)
    return any(word not in KEPT and len(word) > 1 for word in words)


def test_back_office_labels_of_our_models_are_chinese(db: None) -> None:
    """Field names, column titles and model names of every admin page of ours, in zh-hans."""
    english = []
    with translation.override("zh-hans"):
        for model, model_admin in admin.site._registry.items():
            if not model.__module__.startswith("apps."):
                continue
            labels = {"model": str(model._meta.verbose_name), "models": str(model._meta.verbose_name_plural)}
            for field in model._meta.get_fields():
                if hasattr(field, "verbose_name") and field.name != "id":
                    labels[field.name] = str(field.verbose_name)
            for name in [*model_admin.list_display, *model_admin.readonly_fields]:
                if isinstance(name, str) and name not in ("id", "pk"):
                    labels[f"column {name}"] = str(label_for_field(name, model, model_admin))
            english += [f"{model._meta.label} {key}: {value}" for key, value in labels.items() if _foreign(value)]
    assert english == []


def test_no_template_uses_inline_event_handlers() -> None:
    """The Content-Security-Policy blocks onchange= and friends: behaviour lives in static JS files."""
    handler = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.IGNORECASE)
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "templates").rglob("*.html") if handler.search(p.read_text())
    ]
    assert offenders == []
