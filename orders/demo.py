"""Demo data: the 14 committees, a few SMEs and products, an exhibition and a show.

Loading is idempotent: every row is found by a natural key before it is made.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.accounts import create_user, normalise_email
from orders.models import (
    Committee,
    Exhibition,
    ExhibitionProduct,
    PackageItem,
    Product,
    ProductKind,
    Role,
    Segment,
    SegmentProduct,
    Show,
    Supplier,
    User,
)

COMMITTEES = [
    ("food", "식품", "Food & Beverages"),
    ("cosmetics", "화장품·뷰티", "Cosmetics & Beauty"),
    ("medical", "의료·방역", "Medical & Quarantine Goods"),
    ("machinery", "기계·설비", "Machinery & Equipment"),
    ("electronics", "전기·전자", "Electrical & Electronics"),
    ("fashion", "패션·의류", "Fashion & Apparel"),
    ("seafood", "수산물", "Seafood"),
    ("agriculture", "농산물", "Agricultural Products"),
    ("health", "건강기능식품", "Health Supplements"),
    ("living", "생활용품", "Household Goods"),
    ("auto_parts", "자동차부품", "Auto Parts"),
    ("chemicals", "화학·소재", "Chemicals & Materials"),
    ("content", "문화콘텐츠", "Culture & Content"),
    ("logistics", "물류·유통", "Logistics & Distribution"),
]

DEMO_PASSWORD = "livemall-demo"
DEMO_USERS = [
    ("admin@livemall.example", "Admin", Role.admin, "KR", None),
    ("host@livemall.example", "김지수 (Studio host)", Role.host, "KR", None),
    ("member@livemall.example", "Иван Петров", Role.member, "RU", "Moscow"),
    ("buyer@livemall.example", "王芳", Role.buyer, "CN", None),
]

SUPPLIERS = [
    ("Jeju Green Tea Co.", "Jeju"),
    ("Busan Ocean Foods", "Busan"),
    ("Daegu Filter Tech", "Daegu"),
    ("Seoul Beauty Lab", "Seoul"),
]

# (supplier index, committee code, name, description, price minor, currency, stock, kind, moq)
PRODUCTS = [
    (0, "food", "Jeju Organic Green Tea 100g", "First-flush leaves from Jeju island.", 1500, "USD", 120, "retail", 1),
    (0, "food", "Yuja Honey Tea 1kg", "Citron preserved in honey.", 1200, "USD", 80, "retail", 1),
    (1, "seafood", "Dried Anchovy Gift Set", "Premium Tongyeong anchovies.", 3900, "USD", 40, "retail", 1),
    (1, "seafood", "Seasoned Laver 20-pack", "Roasted seaweed snacks.", 900, "USD", 300, "retail", 1),
    (3, "cosmetics", "Snail Mucin Essence 100ml", "Hydrating essence.", 2200, "USD", 60, "retail", 1),
    (3, "cosmetics", "Ginseng Night Cream 50ml", "Red ginseng cream.", 3400, "USD", 25, "retail", 1),
    (2, "medical", "KF94 Mask (box of 50)", "Four-layer filter masks.", 1800, "USD", 500, "retail", 1),
    (2, "medical", "Mask Production Line", "Automatic KF94 mask line, 120 masks/min.", 8500000, "USD", 3, "industrial", 1),
    (2, "medical", "Melt-blown Filter Machine", "Filter fabric machine for mask lines.", 12000000, "USD", 2, "industrial", 1),
]

PACKAGE_NAME = "Mask Line + Filter Machine Package"


async def _get_or_create(session: AsyncSession, model, lookup: dict, **values):
    row = await session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **values)
        session.add(row)
        await session.flush()
    return row


async def load_demo(session: AsyncSession, now: datetime | None = None, images=None) -> dict[str, int]:
    """`images`: an ImageStore (orders/product_images.py) to give the products pictures in."""
    now = now or datetime.now(timezone.utc)
    committees = {}
    for code, ko, en in COMMITTEES:
        committees[code] = await _get_or_create(session, Committee, {"code": code}, name_ko=ko, name_en=en)

    users = {}
    for email, name, role, country, city in DEMO_USERS:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            user = await create_user(
                session, email=email, password=DEMO_PASSWORD, name=name, role=role, country=country, city=city
            )
        users[role] = user

    suppliers = [await _get_or_create(session, Supplier, {"name": n}, region=r) for n, r in SUPPLIERS]

    products = []
    for sup, committee, name, desc, price, currency, stock, kind, moq in PRODUCTS:
        products.append(
            await _get_or_create(
                session,
                Product,
                {"name": name},
                supplier_id=suppliers[sup].id,
                committee_id=committees[committee].id,
                description=desc,
                price=price,
                currency=currency,
                stock=stock,
                kind=ProductKind(kind),
                moq=moq,
            )
        )
    package = await _get_or_create(
        session,
        Product,
        {"name": PACKAGE_NAME},
        supplier_id=suppliers[2].id,
        committee_id=committees["medical"].id,
        description="The mask production line sold together with the melt-blown filter machine.",
        price=19500000,
        currency="USD",
        stock=2,
        kind=ProductKind.industrial,
        moq=1,
    )
    for item in (products[7], products[8]):
        await _get_or_create(session, PackageItem, {"package_id": package.id, "product_id": item.id}, quantity=1)

    exhibition = await _get_or_create(
        session,
        Exhibition,
        {"title": "Jeju Winter Specialties Fair"},
        partner="Jeju Special Self-Governing Province",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=60),
    )
    for product, price in ((products[0], 1200), (products[1], 990)):
        await _get_or_create(
            session, ExhibitionProduct, {"exhibition_id": exhibition.id, "product_id": product.id}, price=price
        )

    show = await session.scalar(select(Show).where(Show.title == "K-Goods Live: Winter Special"))
    if show is None:
        show = Show(
            title="K-Goods Live: Winter Special",
            host_id=users[Role.host].id,
            scheduled_at=(now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0),
            exhibition_id=exhibition.id,
        )
        session.add(show)
        await session.flush()
        lineup = [
            ("Jeju teas", "food", [products[0], products[1]]),
            ("Beauty from Seoul", "cosmetics", [products[4], products[5]]),
            ("Masks and mask lines", "medical", [products[6], products[7], package]),
        ]
        for position, (title, code, items) in enumerate(lineup, start=1):
            segment = Segment(show_id=show.id, position=position, title=title, committee_id=committees[code].id)
            session.add(segment)
            await session.flush()
            for index, product in enumerate(items):
                session.add(SegmentProduct(segment_id=segment.id, product_id=product.id, position=index))
        await session.flush()
    from orders.shipping import load_demo_shipping  # weights and a default USD shipping table

    await load_demo_shipping(session, now)
    from orders.exchange_rates import load_demo_rates  # USD to KRW, RUB, CNY, VND, EUR, dated today

    await load_demo_rates(session, now)
    if images is not None:  # a picture or two per product, drawn here: no image files in git
        await load_demo_images(session, images, [*products, package])
    return {"committees": len(committees), "products": len(products) + 1, "show_id": show.id}


# --- Demo pictures (issue 16, item 2) ------------------------------------------------------

DEMO_SIZE = (960, 720)
# Per committee: background and accent colours of the drawn pictures.
DEMO_COLOURS = {"food": ((46, 125, 50), (200, 230, 201)), "seafood": ((2, 119, 189), (179, 229, 252)),
                "cosmetics": ((173, 20, 87), (248, 187, 208)), "medical": ((69, 90, 100), (207, 216, 220))}


def demo_picture(name: str, committee: str, variant: int = 0) -> bytes:
    """A simple 960 × 720 PNG: the committee's colours, a few shapes and the product's
    name. The same arguments always make the same bytes (so loading again adds nothing)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    dark, light = DEMO_COLOURS.get(committee, ((84, 110, 122), (236, 239, 241)))
    width, height = DEMO_SIZE
    picture = Image.new("RGB", (width, height), light if variant else dark)
    draw = ImageDraw.Draw(picture)
    ink, paper = (dark, light) if variant else (light, dark)
    for i in range(6):  # a fan of rings, shifted by the name so products differ
        r = 96 + 56 * i + (len(name) * 7) % 40
        draw.ellipse((width - 120 - r, 112 - r, width - 120 + r, 112 + r), outline=ink, width=11)
    draw.rounded_rectangle((64, 416, width - 64, 656), radius=32, fill=ink)
    font = ImageFont.load_default(size=52)
    words, lines = name.split(), [""]
    for word in words:  # wrap to the box
        trial = f"{lines[-1]} {word}".strip()
        if draw.textlength(trial, font=font) > width - 192 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = trial
    for row, line in enumerate(lines[:3]):
        draw.text((96, 440 + row * 68), line, fill=paper, font=font)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)  # read once, by prepare_image: size does not matter
    return buffer.getvalue()


async def load_demo_images(session: AsyncSession, store, products: list[Product]) -> None:
    """Two pictures for the first product of each committee, one for the others; a
    product that has pictures already is left as it is."""
    import asyncio

    from orders.product_images import add_image, images_of, prepare_image

    seen: set[int] = set()
    for product in products:
        if await images_of(session, product.id):
            seen.add(product.committee_id)
            continue
        variants = (0,) if product.committee_id in seen else (0, 1)
        seen.add(product.committee_id)
        committee = await session.get(Committee, product.committee_id)
        for variant in variants:
            data = demo_picture(product.name, committee.code if committee else "", variant)
            prepared = await asyncio.to_thread(prepare_image, data, max_pixels=DEMO_SIZE[0] * DEMO_SIZE[1])
            await add_image(session, store, product.id, prepared)
