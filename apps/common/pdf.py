"""PDF with Chinese text: a CJK font subset that reportlab can embed, registered per document.

Used by the compliance reports and the intent-verification certificate.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# reportlab's font registry is process-wide: one document at a time registers
# its subset (see registered_font), whichever module draws it.
PDF_LOCK = threading.Lock()


class PdfFontMissing(RuntimeError):
    pass


def cjk_truetype_subset(characters: Iterable[str], *, path: str, index: int) -> io.BytesIO:
    """A TrueType font holding just ``characters`` (plus ASCII), from an OpenType/CFF CJK font.

    reportlab embeds only TrueType outlines, and Noto Sans CJK has CFF
    (PostScript) outlines, which reportlab refuses. So the characters this
    document uses are cut out of the font with fontTools and their cubic
    outlines converted to quadratic TrueType ones (cu2qu). For a few thousand
    characters this takes about a second; the result is embedded in the PDF.
    """
    from fontTools import subset
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont, newTable

    # fontTools narrates every subsetting step at INFO level.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    if not Path(path).is_file():
        raise PdfFontMissing(f"CJK font not found: {path} (Debian package fonts-noto-cjk).")
    font = TTFont(path, fontNumber=index)
    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.desubroutinize = True
    options.notdef_outline = True
    options.name_IDs = ["*"]
    options.glyph_names = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes={ord(char) for char in characters} | set(range(0x20, 0x7F)) | {0x2026})
    subsetter.subset(font)
    if "CFF " in font:
        order = font.getGlyphOrder()
        glyph_set = font.getGlyphSet()
        glyphs = {}
        for name in order:
            pen = TTGlyphPen(glyph_set)
            # 1 font unit of error: invisible at any print size.
            glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
            glyphs[name] = pen.glyph()
        font["loca"] = newTable("loca")
        glyf = font["glyf"] = newTable("glyf")
        glyf.glyphOrder = order
        glyf.glyphs = glyphs
        for tag in ("CFF ", "VORG"):
            if tag in font:
                del font[tag]
        maxp = font["maxp"] = newTable("maxp")
        maxp.tableVersion = 0x00010000
        for attribute in (
            "maxZones",
            "maxTwilightPoints",
            "maxStorage",
            "maxFunctionDefs",
            "maxInstructionDefs",
            "maxStackElements",
            "maxSizeOfInstructions",
            "maxComponentElements",
        ):
            setattr(maxp, attribute, 0)
        maxp.maxZones = 1
        font["post"].formatType = 3.0
        font.sfntVersion = "\x00\x01\x00\x00"
    buffer = io.BytesIO()
    font.save(buffer)
    buffer.seek(0)
    return buffer


@contextmanager
def registered_font(font: Any) -> Iterator[None]:
    """Register this document's font subset for the duration of one document.

    reportlab's registry ignores a second font under a known name and maps a
    known face name to the first font registered with it, so every document
    would draw with the first document's subset (missing glyphs). Hence the
    entries are removed again afterwards (call under ``PDF_LOCK``).
    """
    from reportlab.pdfbase import pdfmetrics

    registry, faces = pdfmetrics._fonts, pdfmetrics._dynFaceNames
    registry.pop(font.fontName, None)
    faces.pop(font.face.name, None)
    pdfmetrics.registerFont(font)
    try:
        yield
    finally:
        registry.pop(font.fontName, None)
        faces.pop(font.face.name, None)


# In NotoSansCJK-Regular.ttc: 0 JP, 1 KR, 2 SC (Simplified Chinese), 3 TC, 4 HK.
DEFAULT_CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
DEFAULT_CJK_FONT_INDEX = 2


def cjk_font_source() -> tuple[str, int]:
    """The CJK font file and face index (settings COMPLIANCE_PDF_FONT / _INDEX, Noto Sans CJK SC by default)."""
    from django.conf import settings

    return (
        str(getattr(settings, "COMPLIANCE_PDF_FONT", DEFAULT_CJK_FONT)),
        int(getattr(settings, "COMPLIANCE_PDF_FONT_INDEX", DEFAULT_CJK_FONT_INDEX)),
    )
