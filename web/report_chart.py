"""The admin's chart of a show's audience over time with its sales marked, as SVG
written on the server from orders.reports.audience_curve: no script, no charting
library, and nothing to run in the page (its CSP allows no inline script anyway).

Every text in it — the show's title, product names, the labels — goes through
markupsafe's escape, as jinja would: a product called `</text><script>` stays text.
Sale markers carry `data-order-id` and `data-x` (their x in the SVG's own units), which
the browser test checks against the order's time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class ChartTexts:
    """The chart's words in the page's language (admin.html passes them translated)."""

    title: str
    description: str
    curve_label: str  # legend: people who had joined
    sale_label: str  # legend: a sale
    peak: str  # "Most at once: 6"
    sale_title: str  # a marker's tooltip, with {quantity} {product} {total} {time}
    money: Callable[[int, str], str]  # minor units and currency → the page's way of writing it


def fill(template: str, **values: Any) -> Markup:
    """`template` (a translation, escaped as it is) with each {name} replaced by the
    value, escaped: a product's name cannot add markup."""
    text = str(escape(template))
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(escape(value)))
    return Markup(text)


def x_of(seconds: float, span: float) -> float:
    return round(LEFT + PLOT_W * (seconds / span if span else 0.0), 2)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _text(x: float, y: float, text: str, **attrs: Any) -> str:
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x}" y="{y}"{extra}>{escape(text)}</text>'


def audience_svg(curve: dict[str, Any], texts: ChartTexts) -> Markup:
    span = float(curve["seconds"])
    top = max(curve["people"], curve.get("peak") or 0, 1)

    def y_of(count: float) -> float:
        return round(TOP + PLOT_H - PLOT_H * count / top, 2)

    path = [f"M{LEFT},{y_of(0)}"]
    for seconds, count in curve["points"]:
        path.append(f"H{x_of(seconds, span)}V{y_of(count)}")
    path.append(f"H{LEFT + PLOT_W}")

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="audience-chart" data-testid="audience-chart" '
        # As wide as the page allows, up to its own size (site.css, .audience-chart): a
        # phone shows it whole, scaled. No style attribute: the pages' CSP refuses them.
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="audience-chart-title audience-chart-desc" data-show-id="{int(curve["show_id"])}" '
        f'data-seconds="{span}">',
        f'<title id="audience-chart-title">{escape(texts.title)}</title>',
        f'<desc id="audience-chart-desc">{escape(texts.description)}</desc>',
        # axes and the time and count labels
        f'<path class="axis" d="M{LEFT},{TOP}V{TOP + PLOT_H}H{LEFT + PLOT_W}" fill="none" stroke="#6b6b6b"/>',
        _text(LEFT - 6, TOP + 10, str(top), text_anchor="end", class_="tick"),
        _text(LEFT - 6, TOP + PLOT_H, "0", text_anchor="end", class_="tick"),
        _text(LEFT, TOP + PLOT_H + 16, "0:00", class_="tick"),
        _text(LEFT + PLOT_W, TOP + PLOT_H + 16, _clock(span), text_anchor="end", class_="tick"),
        f'<path class="curve" data-testid="audience-curve" d="{"".join(path)}" fill="none" stroke="#1f5fbf" '
        f'stroke-width="2"/>',
    ]
    if curve.get("peak"):
        y = y_of(curve["peak"])
        parts.append(f'<line class="peak" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y}" y2="{y}" stroke="#6b6b6b" '
                     f'stroke-dasharray="4 4"/>')
        parts.append(_text(LEFT + PLOT_W, y - 4, texts.peak, text_anchor="end", class_="tick"))
    def sale_title(sale: dict[str, Any]) -> Markup:
        return fill(texts.sale_title, quantity=sale["quantity"], product=sale["product"],
                    total=texts.money(sale["total"], sale["currency"]), time=_clock(sale["at"]))

    for sale in curve["sales"]:
        x = x_of(sale["at"], span)
        parts.append(
            f'<g class="sale" data-testid="sale-marker" data-order-id="{int(sale["order_id"])}" data-x="{x}">'
            f'<title>{sale_title(sale)}</title>'
            f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#177a41" stroke-width="1.5"/>'
            f'<circle cx="{x}" cy="{TOP + 5}" r="5" fill="#177a41"/></g>'
        )
    legend_y = HEIGHT - 8
    parts += [
        f'<line x1="{LEFT}" x2="{LEFT + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#1f5fbf" stroke-width="2"/>',
        _text(LEFT + 24, legend_y, texts.curve_label, class_="legend"),
        f'<circle cx="{LEFT + 330}" cy="{legend_y - 4}" r="5" fill="#177a41"/>',
        _text(LEFT + 340, legend_y, texts.sale_label, class_="legend"),
        "</svg>",
    ]
    return Markup("".join(parts))
