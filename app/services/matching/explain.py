"""A score explained field by field: "名称 相似 88%（+4.1）· 同城（+1.2）· 门牌相同（+3.0）·
生日 不同（−2.5）→ 5.8" (through tr: English when the reader's locale is English)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from app.services.errors import N_, tr

# (field, level) -> msgid; %(pct)s is the similarity in per cent where the level shows it.
LABELS: dict[tuple[str, str], str] = {
    ("name", "exact"): N_("Name identical"),
    ("name", "homophone"): N_("Name sounds the same"),
    ("name", "close"): N_("Name similar %(pct)s%%"),
    ("name", "similar"): N_("Name partly similar %(pct)s%%"),
    ("name", "far"): N_("Name different %(pct)s%%"),
    ("surname", "exact"): N_("Surname identical"),
    ("surname", "homophone"): N_("Surname sounds the same"),
    ("surname", "swapped"): N_("Surname and given name swapped"),
    ("surname", "close"): N_("Surname similar %(pct)s%%"),
    ("surname", "similar"): N_("Surname partly similar %(pct)s%%"),
    ("surname", "far"): N_("Surname different"),
    ("given", "exact"): N_("Given name identical"),
    ("given", "homophone"): N_("Given name sounds the same"),
    ("given", "swapped"): N_("Given name and surname swapped"),
    ("given", "close"): N_("Given name similar %(pct)s%%"),
    ("given", "similar"): N_("Given name partly similar %(pct)s%%"),
    ("given", "far"): N_("Given name different"),
    ("given", "far_han"): N_("Given name different"),
    ("legal_form", "same"): N_("Same legal form"),
    ("legal_form", "different"): N_("Other legal form"),
    ("place", "same_city"): N_("Same city"),
    ("place", "same_province"): N_("Same province"),
    ("place", "different"): N_("Another city"),
    ("address", "exact"): N_("Address identical"),
    ("address", "close"): N_("Address similar %(pct)s%%"),
    ("address", "similar"): N_("Address partly similar %(pct)s%%"),
    ("address", "far"): N_("Address different"),
    ("house_number", "same"): N_("Same house number"),
    ("house_number", "close"): N_("House number nearly the same"),
    ("house_number", "partial"): N_("House number partly the same"),
    ("house_number", "different"): N_("Other house number"),
    ("phone", "exact"): N_("Same landline"),
    ("phone", "tail"): N_("Landline's last 8 digits the same"),
    ("phone", "different"): N_("Other landline"),
    ("mobile", "exact"): N_("Same mobile"),
    ("mobile", "tail"): N_("Mobile's last 8 digits the same"),
    ("mobile", "different"): N_("Other mobile"),
    ("email", "exact"): N_("Same e-mail"),
    ("email", "local"): N_("Same e-mail user name"),
    ("email", "close"): N_("E-mail user name similar"),
    ("email", "different"): N_("Other e-mail"),
    ("birthday", "exact"): N_("Birthday identical"),
    ("birthday", "month_day"): N_("Birthday same month and day"),
    ("birthday", "year_off"): N_("Birthday year off by one"),
    ("birthday", "swapped"): N_("Birthday day and month swapped"),
    ("birthday", "partial"): N_("Birthday partly the same"),
    ("birthday", "different"): N_("Birthday different"),
    ("household", "capped"): N_("Shared household counted once"),
    ("industry", "same"): N_("Same industry"),
    ("industry", "different"): N_("Other industry"),
}
SEPARATOR = "· "  # as in "名称 相似 88%（+4.1）· 同城（+1.2）→ 5.3"


@dataclass(frozen=True)
class Part:
    field: str
    level: str                   # 'exact', 'close', 'missing', 'swapped', …
    similarity: Optional[int]    # 0–100 for text compared by similarity, else None
    weight: float                # log2(m/u) of the level; 0 when missing

    def label(self) -> str:
        msgid = LABELS[(self.field, self.level)]
        return tr(msgid, pct=self.similarity) if "%(pct)s" in msgid else tr(msgid)


@dataclass(frozen=True)
class Explained:
    total: float
    parts: list[Part] = field(default_factory=list)

    def text(self) -> str:
        """Each compared field with its signed weight, then the total (missing fields left
        out: they weigh nothing)."""
        shown = [f"{p.label()}（{_signed(p.weight)}）" for p in self.parts
                 if p.level != "missing"]
        return SEPARATOR.join(shown) + f"→ {_number(self.total)}"


def _signed(x: float) -> str:
    x = round(x, 1)
    return f"+{x:.1f}" if x >= 0 else f"−{abs(x):.1f}"


def _number(x: float) -> str:
    x = round(x, 1)
    return f"{x:.1f}" if x >= 0 else f"−{abs(x):.1f}"
