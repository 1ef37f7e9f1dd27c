"""Audit-report files: the rows (masked with ``apps.common.masking``), and the CSV, XLSX and PDF writers.

Writers take a header and a *callable* returning a fresh iterator of rows,
write to a local path and report progress. CSV and XLSX read the rows once,
one at a time, so memory does not grow with the number of rows. The PDF reads
them twice (first to learn which characters need a glyph, then to draw) and
is capped at ``pdf_max_rows()`` rows: a PDF of a million rows is no use to a
reader, and reportlab keeps the whole document in memory until it is saved.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.common.masking import dump_json, mask_json_text, mask_text
from apps.common.pdf import PDF_LOCK, cjk_font_source, cjk_truetype_subset, registered_font

# --- Rows and header ---------------------------------------------------------------------

# Audit target types that are people: in their records a plain "name" key holds a
# personal name (a branch's or a queue's "name" is not personal data).
PERSON_TARGET_TYPES = frozenset(
    {
        "customers.customer",
        "customers.blacklistentry",
        "visits.visit",
        "verification.servicesession",  # the visit's label before it had its own app
        "staff.staffprofile",
        "auth.user",
    }
)

EXPORT_COLUMNS = (
    gettext_lazy("No."),
    gettext_lazy("Time"),
    gettext_lazy("Actor kind"),
    gettext_lazy("Actor"),
    gettext_lazy("Action code"),
    gettext_lazy("Action"),
    gettext_lazy("Target type"),
    gettext_lazy("Target ID"),
    gettext_lazy("Target"),
    gettext_lazy("Details"),
    gettext_lazy("Record hash"),
)

# A formatted row: the sequence as an int, every other cell a string.
ExportRow = tuple[Any, ...]
ProgressCallback = Callable[[int], None]
RowSource = Callable[[], Iterable[ExportRow]]

# How often writers report progress (rows).
PROGRESS_EVERY = 5000


class RowFormatter:
    """Turns streamed audit tuples (selectors.RECORD_FIELDS) into export rows.

    Build it inside the export's language (``translation.override``): action
    and actor-kind labels are translated once here, not once per row.
    """

    def __init__(self, *, unmask: bool) -> None:
        self.unmask = unmask
        self.action_labels = {code: str(label) for code, label in AuditAction.choices}
        self.actor_kinds = {code: str(label) for code, label in ActorKind.choices}
        self.zone = timezone.get_current_timezone()

    def __call__(self, record: tuple[Any, ...]) -> ExportRow:
        (sequence, created_at, actor_kind, actor_label, action, target_type, target_id, target_label, data, digest) = (
            record
        )
        details = dump_json(data)
        if not self.unmask:
            actor_label = mask_text(actor_label)
            target_label = mask_text(target_label)
            details = mask_json_text(details, data, about_a_person=target_type in PERSON_TARGET_TYPES)
        return (
            sequence,
            # isoformat is several times faster than strftime; same text.
            created_at.astimezone(self.zone).isoformat(sep=" ", timespec="seconds")[:19],
            self.actor_kinds.get(actor_kind, actor_kind),
            actor_label,
            action,
            self.action_labels.get(action, action),
            target_type,
            target_id,
            target_label,
            details,
            digest,
        )


@dataclass(frozen=True)
class ReportHeader:
    """What every file says about itself before its rows."""

    export_id: int
    period: str
    filter_text: str
    generated_by: str
    generated_at: datetime
    rows_matching: int
    rows_total: int
    unmasked: bool
    up_to_sequence: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return _("Audit report")

    def lines(self) -> list[tuple[str, str]]:
        if self.rows_total < self.rows_matching:
            records = _("%(written)s of %(matching)s matching records") % {
                "written": f"{self.rows_total:,}",
                "matching": f"{self.rows_matching:,}",
            }
        else:
            records = f"{self.rows_total:,}"
        personal = (
            _("UNMASKED: names and numbers as recorded; handle as personal data")
            if self.unmasked
            else _("Masked (names, ID, mobile and card numbers)")
        )
        lines = [
            (_("Export number"), str(self.export_id)),
            (_("Period"), self.period),
            (_("Filter"), self.filter_text),
            (_("Generated by"), self.generated_by),
            (_("Generated at"), timezone.localtime(self.generated_at).strftime("%Y-%m-%d %H:%M:%S %Z")),
            (_("Records"), records),
            (_("Personal data"), personal),
            (_("Audit trail up to record"), f"#{self.up_to_sequence}"),
        ]
        lines.extend((_("Note"), note) for note in self.notes)
        return lines


def _report_progress(rows: Iterable[ExportRow], progress: ProgressCallback) -> Iterator[ExportRow]:
    for count, row in enumerate(rows, start=1):
        yield row
        if count % PROGRESS_EVERY == 0:
            progress(count)


# --- Writers -----------------------------------------------------------------------------


class Exporter(Protocol):
    extension: str
    content_type: str

    def write(self, path: Path, *, header: ReportHeader, rows: RowSource, progress: ProgressCallback) -> int:
        """Write the file; return how many rows it holds."""
        ...


# Cells starting with one of these are formulas to Excel and LibreOffice when
# a CSV is opened: an actor label such as =HYPERLINK(...) must stay text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# Only the cells of a row that hold recorded free text (actor 3, target
# type 6, id 7 and label 8: always strings) are checked; the others are
# codes, times, JSON objects (control characters escaped) and hashes we produce.
_FREE_TEXT_CELLS = (3, 6, 7, 8)
_FORMULA_CHARS = frozenset(_FORMULA_START)


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class CsvExporter:
    extension = "csv"
    content_type = "text/csv; charset=utf-8"

    def write(self, path: Path, *, header: ReportHeader, rows: RowSource, progress: ProgressCallback) -> int:
        written = 0
        # utf-8-sig writes the byte-order mark Excel needs to read the file as UTF-8.
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([header.title])
            writer.writerows([label, _csv_safe(value)] for label, value in header.lines())
            writer.writerow([])
            writer.writerow([str(column) for column in EXPORT_COLUMNS])
            for row in _report_progress(rows(), progress):
                if (
                    row[3][:1] in _FORMULA_CHARS
                    or row[6][:1] in _FORMULA_CHARS
                    or row[7][:1] in _FORMULA_CHARS
                    or row[8][:1] in _FORMULA_CHARS
                ):
                    row = tuple(_csv_safe(value) for value in row)  # noqa: PLW2901
                writer.writerow(row)
                written += 1
        progress(written)
        return written


# Excel's limit is 1,048,576 rows a sheet; a longer export continues on the next sheet.
XLSX_MAX_ROWS_PER_SHEET = 1_048_576
_XLSX_COLUMN_WIDTHS = (10, 20, 10, 18, 30, 24, 24, 12, 30, 60, 20)


def _xlsx_finish(sheet: Any, titles_row: int, last_row: int) -> None:
    """Each column can be filtered (the rows' count is known only now: written at save)."""
    from openpyxl.utils import get_column_letter

    sheet.auto_filter.ref = f"A{titles_row}:{get_column_letter(len(EXPORT_COLUMNS))}{max(last_row, titles_row)}"


def _xlsx_time(sheet: Any, text: str) -> Any:
    """The time as a real date-time (sortable, filterable), shown as the text was: local time,
    as every time in the report (Excel cells have no time zone)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=datetime.strptime(text, "%Y-%m-%d %H:%M:%S"))  # noqa: DTZ007
    cell.number_format = "yyyy-mm-dd hh:mm:ss"
    return cell


class XlsxExporter:
    extension = "xlsx"
    content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def write(self, path: Path, *, header: ReportHeader, rows: RowSource, progress: ProgressCallback) -> int:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        # write_only: rows go straight to a temporary XML file per sheet and
        # the zip is assembled at save(); memory stays flat.
        workbook = Workbook(write_only=True)
        bold = Font(bold=True)

        def new_sheet(number: int) -> Any:
            title = _("Audit records") if number == 1 else f"{_('Audit records')} {number}"
            sheet = workbook.create_sheet(title=title[:31])
            for index, width in enumerate(_XLSX_COLUMN_WIDTHS, start=1):
                sheet.column_dimensions[get_column_letter(index)].width = width
            # The column titles stay in view while scrolling. A write-only sheet writes its view
            # before its rows, so this is set first: below the report's header on the first sheet.
            sheet.freeze_panes = f"A{len(header.lines()) + 4}" if number == 1 else "A2"
            return sheet

        def safe_cell(sheet: Any, value: Any) -> Any:
            if not isinstance(value, str):
                return value
            if ILLEGAL_CHARACTERS_RE.search(value):
                # Control characters are not allowed in XLSX at all.
                value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            if value.startswith(("=", "#")):
                # openpyxl would store "=..." as a formula and "#N/A" as an
                # error; recorded text must stay text.
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"
                return cell
            return value

        def column_titles(sheet: Any) -> list[Any]:
            cells = []
            for column in EXPORT_COLUMNS:
                cell = WriteOnlyCell(sheet, value=str(column))
                cell.font = bold
                cells.append(cell)
            return cells

        sheet_number = 1
        sheet = new_sheet(sheet_number)
        title = WriteOnlyCell(sheet, value=header.title)
        title.font = Font(bold=True, size=14)
        sheet.append([title])
        for label, value in header.lines():
            sheet.append([label, safe_cell(sheet, value)])
        sheet.append([])
        sheet.append(column_titles(sheet))
        rows_on_sheet = titles_row = len(header.lines()) + 3
        written = 0
        for row in _report_progress(rows(), progress):
            if rows_on_sheet >= XLSX_MAX_ROWS_PER_SHEET:
                _xlsx_finish(sheet, titles_row, rows_on_sheet)
                sheet_number += 1
                sheet = new_sheet(sheet_number)
                sheet.append(column_titles(sheet))
                rows_on_sheet = titles_row = 1
            cells = list(row)
            cells[1] = _xlsx_time(sheet, cells[1])
            for index in _FREE_TEXT_CELLS:
                # Recorded free text may hold anything; the other cells are ours.
                if cells[index]:
                    cells[index] = safe_cell(sheet, cells[index])
            sheet.append(cells)
            rows_on_sheet += 1
            written += 1
        _xlsx_finish(sheet, titles_row, rows_on_sheet)
        workbook.save(path)
        progress(written)
        return written


# --- PDF ---------------------------------------------------------------------------------

DEFAULT_PDF_MAX_ROWS = 20_000


def pdf_max_rows() -> int:
    return int(getattr(settings, "COMPLIANCE_PDF_MAX_ROWS", DEFAULT_PDF_MAX_ROWS))


# reportlab registers fonts in a process-wide table; one document at a time
# (under PDF_LOCK) uses the per-document font registered under this name.
_PDF_FONT_NAME = "RemoteBankAuditCJK"

# Landscape A4, in points.
_PAGE_WIDTH, _PAGE_HEIGHT = 842.0, 595.0
_MARGIN = 28.0
_FONT_SIZE = 7.0
_LEADING = 9.0
_MAX_LINES_PER_CELL = 4
# Columns drawn in the PDF (index into an export row) and their widths; the
# widths add up to the printable width.
_PDF_COLUMNS = ((0, 44.0), (1, 78.0), (3, 80.0), (5, 120.0), (8, 130.0), (9, 334.0))
_BREAK_AFTER = frozenset(" ,;:/-，、；：")


_DETAILS = 9


def readable_details(details: str) -> str:
    """The recorded JSON as "key: value" pairs a person reads, reasons in words; the JSON itself
    stays in the CSV and XLSX exports, which are for machines as much as for people."""
    from apps.compliance.labels import reason_label

    try:
        data = json.loads(details)
    except (TypeError, ValueError):
        return str(details)
    if not isinstance(data, dict):
        return str(details)
    parts = []
    for key, value in data.items():
        shown = value
        if key in ("reason", "outcome", "result") and isinstance(value, str):
            shown = reason_label(value) or value
        elif isinstance(value, dict | list):
            shown = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {shown}")
    return "; ".join(parts)


def _numbered_canvas_class() -> Any:
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        """Keeps each page until the end, then draws "Page N of M" on all of them."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.setFont(_PDF_FONT_NAME, _FONT_SIZE)
                self.drawRightString(
                    _PAGE_WIDTH - _MARGIN,
                    _PAGE_HEIGHT - _MARGIN + 8,
                    _("Page %(number)s of %(total)s") % {"number": number, "total": total},
                )
                Canvas.showPage(self)
            Canvas.save(self)

    return NumberedCanvas


class _PdfLayout:
    """Draws the report on a reportlab canvas: a header block, then rows as a ruled table."""

    def __init__(self, canvas: Any, header: ReportHeader) -> None:
        from reportlab.lib.utils import simpleSplit
        from reportlab.pdfbase.pdfmetrics import stringWidth

        self.canvas = canvas
        self.header = header
        self.split = simpleSplit
        self.string_width = stringWidth
        self.widths: dict[str, float] = {}
        self.page = 1
        self.titles = [[str(EXPORT_COLUMNS[index])] for index, _width in _PDF_COLUMNS]
        self.y = self._page_top()

    @staticmethod
    def texts(header: ReportHeader) -> list[str]:
        """Everything drawn besides the rows (for the font subset)."""
        return [
            header.title,
            _("Page %(number)s of %(total)s"),
            "0123456789",
            *(f"{label}: {value}" for label, value in header.lines()),
            *(str(EXPORT_COLUMNS[index]) for index, _width in _PDF_COLUMNS),
        ]

    def _page_top(self) -> float:
        canvas = self.canvas
        canvas.setFont(_PDF_FONT_NAME, _FONT_SIZE)
        top = _PAGE_HEIGHT - _MARGIN + 8
        canvas.drawString(_MARGIN, top, f"{self.header.title} #{self.header.export_id}")
        # "Page N of M": M is known only at the end, so the canvas draws it when saving (_NumberedCanvas).
        return _PAGE_HEIGHT - _MARGIN - 4

    def draw_header(self) -> None:
        canvas = self.canvas
        canvas.setFont(_PDF_FONT_NAME, 14)
        canvas.drawString(_MARGIN, self.y - 14, self.header.title)
        self.y -= 24
        canvas.setFont(_PDF_FONT_NAME, 8)
        for label, value in self.header.lines():
            for line in self.split(f"{label}: {value}", _PDF_FONT_NAME, 8, _PAGE_WIDTH - 2 * _MARGIN):
                canvas.drawString(_MARGIN, self.y - 10, line)
                self.y -= 11
        self.y -= 8
        canvas.setFont(_PDF_FONT_NAME, _FONT_SIZE)
        self._draw_cells(self.titles)

    def _char_width(self, char: str) -> float:
        width = self.widths.get(char)
        if width is None:
            width = self.widths[char] = self.string_width(char, _PDF_FONT_NAME, _FONT_SIZE)
        return width

    def _cell_lines(self, text: str, width: float) -> list[str]:
        """Wrap to the column: at a space or punctuation when there is one, else anywhere
        (JSON and Chinese have no spaces); at most _MAX_LINES_PER_CELL lines, then "…"."""
        limit = width - 4
        lines: list[str] = []
        line: list[str] = []
        line_width = 0.0
        for char in text.replace("\n", " "):
            char_width = self._char_width(char)
            if line and line_width + char_width > limit:
                cut = max((at + 1 for at, kept in enumerate(line) if kept in _BREAK_AFTER), default=0)
                if cut < len(line) // 2:
                    cut = len(line)
                lines.append("".join(line[:cut]))
                line = line[cut:]
                line_width = sum(self._char_width(kept) for kept in line)
                if len(lines) == _MAX_LINES_PER_CELL:
                    lines[-1] = lines[-1][:-1] + "…"
                    return lines
            line.append(char)
            line_width += char_width
        lines.append("".join(line))
        return lines

    def _draw_cells(self, cells: list[list[str]]) -> None:
        x = _MARGIN
        for (_index, width), lines in zip(_PDF_COLUMNS, cells, strict=True):
            for number, line in enumerate(lines):
                self.canvas.drawString(x + 2, self.y - _LEADING * (number + 1) + 2, line)
            x += width
        self.y -= _LEADING * max(len(lines) for lines in cells) + 2
        self.canvas.setLineWidth(0.2)
        self.canvas.line(_MARGIN, self.y, _PAGE_WIDTH - _MARGIN, self.y)

    def draw_row(self, row: ExportRow) -> None:
        cells = [
            self._cell_lines(readable_details(row[index]) if index == _DETAILS else str(row[index]), width)
            for index, width in _PDF_COLUMNS
        ]
        if self.y - (_LEADING * max(len(lines) for lines in cells) + 2) < _MARGIN:
            self.canvas.showPage()
            self.page += 1
            self.y = self._page_top()
            self._draw_cells(self.titles)
        self._draw_cells(cells)


class PdfExporter:
    extension = "pdf"
    content_type = "application/pdf"

    def write(self, path: Path, *, header: ReportHeader, rows: RowSource, progress: ProgressCallback) -> int:
        from reportlab.pdfbase.ttfonts import TTFont

        # First pass: every character the document will draw.
        characters = set("".join(_PdfLayout.texts(header)))
        for row in rows():
            for index, _width in _PDF_COLUMNS:
                characters.update(readable_details(row[index]) if index == _DETAILS else str(row[index]))
        font_path, font_index = cjk_font_source()
        font_file = cjk_truetype_subset(characters, path=font_path, index=font_index)

        written = 0
        with PDF_LOCK, registered_font(TTFont(_PDF_FONT_NAME, font_file)):
            canvas = _numbered_canvas_class()(str(path), pagesize=(_PAGE_WIDTH, _PAGE_HEIGHT), pageCompression=1)
            canvas.setTitle(f"{header.title} #{header.export_id}")
            canvas.setAuthor(header.generated_by)
            layout = _PdfLayout(canvas, header)
            layout.draw_header()
            for row in _report_progress(rows(), progress):
                layout.draw_row(row)
                written += 1
            canvas.showPage()
            canvas.save()
        progress(written)
        return written


EXPORTERS: dict[str, Exporter] = {"csv": CsvExporter(), "xlsx": XlsxExporter(), "pdf": PdfExporter()}


def exporter_for(fmt: str) -> Exporter:
    return EXPORTERS[fmt]
