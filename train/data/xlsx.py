"""A minimal .xlsx reader (stdlib zipfile + ElementTree): the annotation sheets need only cell text.

openpyxl is not a project dependency, and the sheets we read are plain tables, so this reads the
shared-string table and one worksheet, and returns its rows as lists of strings.
"""

from __future__ import annotations

import re
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

_NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
}
_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


def _column_index(ref: str) -> int:
    """'A1' -> 0, 'AB7' -> 27: cells may be missing from a row, so positions come from the ref."""
    letters = _CELL_REF.match(ref).group(1)
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - ord("A") + 1)
    return index - 1


def _shared_strings(z: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in z.namelist():
        return []
    root = ET.fromstring(z.read("xl/sharedStrings.xml"))
    # A shared string may be split into rich-text runs (<r><t>..</t></r>); join them.
    return ["".join(t.text or "" for t in si.iter(f"{{{_NS['m']}}}t")) for si in root.findall("m:si", _NS)]


def _sheet_path(z: zipfile.ZipFile, sheet: str | int) -> str:
    """Worksheet part of the sheet named `sheet` (or the n-th sheet, 0-based)."""
    workbook = ET.fromstring(z.read("xl/workbook.xml"))
    sheets = workbook.findall("m:sheets/m:sheet", _NS)
    if isinstance(sheet, int):
        chosen = sheets[sheet]
    else:
        matches = [s for s in sheets if s.get("name") == sheet]
        if not matches:
            raise KeyError(f"no sheet named {sheet!r}; sheets: {[s.get('name') for s in sheets]}")
        chosen = matches[0]
    rel_id = chosen.get(f"{{{_NS['r']}}}id")
    rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels.iter(f"{_REL_NS}Relationship") if r.get("Id") == rel_id)
    return target.lstrip("/") if target.startswith("/xl/") else f"xl/{target}"


def _cell_text(cell: ET.Element, shared: list[str]) -> str:
    kind = cell.get("t")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{{{_NS['m']}}}t"))
    value = cell.find("m:v", _NS)
    if value is None or value.text is None:
        return ""
    if kind == "s":
        return shared[int(value.text)]
    text = value.text
    # Whole numbers are stored as floats ("175.0" or "175"); frame numbers must compare as ints.
    if kind in (None, "n") and re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return text


def read_rows(path: Path, sheet: str | int = 0) -> list[list[str]]:
    """All rows of one worksheet as lists of stripped strings, gaps filled with ''. A file that is not
    a readable workbook raises ValueError, whatever part of it is broken."""
    try:
        with zipfile.ZipFile(path) as z:
            shared = _shared_strings(z)
            root = ET.fromstring(z.read(_sheet_path(z, sheet)))
    except (zipfile.BadZipFile, KeyError, ET.ParseError) as e:
        raise ValueError(f"{path.name}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    rows = []
    for row in root.iter(f"{{{_NS['m']}}}row"):
        cells = {}
        for cell in row.findall("m:c", _NS):
            cells[_column_index(cell.get("r"))] = _cell_text(cell, shared).strip()
        width = max(cells) + 1 if cells else 0
        rows.append([cells.get(i, "") for i in range(width)])
    return rows


def read_table(path: Path, required: tuple[str, ...], sheet: str | int = 0) -> list[dict[str, str]]:
    """Rows below the first row that holds every `required` header, as dicts keyed by header.

    Some sheets (SAMM) start with rows of notes, so the header row is found, not assumed.
    """
    rows = read_rows(path, sheet)
    wanted = {h.lower() for h in required}
    for i, row in enumerate(rows):
        if wanted <= {c.lower() for c in row}:
            header = row
            break
    else:
        raise ValueError(f"{path.name}: no header row with columns {list(required)}")
    table = []
    for row in rows[i + 1 :]:
        if not any(row):
            continue
        padded = row + [""] * (len(header) - len(row))
        table.append({h: v for h, v in zip(header, padded) if h})
    return table


def write_xlsx(path: Path, rows: list[list[str | int]]) -> None:
    """Write a one-sheet workbook with inline strings: test fixtures use it to fake the official sheets."""
    def col(i: int) -> str:
        name = ""
        i += 1
        while i:
            i, rem = divmod(i - 1, 26)
            name = chr(ord("A") + rem) + name
        return name

    def cell(ref: str, value: str | int) -> str:
        if isinstance(value, int):
            return f'<c r="{ref}"><v>{value}</v></c>'
        text = str(value).replace("&", "&amp;").replace("<", "&lt;")
        return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'

    sheet_rows = "".join(
        f'<row r="{r + 1}">' + "".join(cell(f"{col(c)}{r + 1}", v) for c, v in enumerate(row) if v != "") + "</row>"
        for r, row in enumerate(rows)
    )
    m, rel = _NS["m"], _NS["r"]
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/></Types>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{m}" xmlns:r="{rel}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{m}"><sheetData>{sheet_rows}</sheetData></worksheet>',
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, text in parts.items():
            z.writestr(name, text)
