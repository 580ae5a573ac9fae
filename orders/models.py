"""The relational schema of livemall, shared by every package.

One declarative ``Base`` for all tables so Alembic sees a single metadata.
Money is integer minor units plus an ISO 4217 code, in 64-bit columns (``Money``);
times are stored in UTC.
Tables owned by the realtime rooms live in ``rooms/models.py`` on the same Base.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names keep migrations identical on SQLite and PostgreSQL.
# Every id is an INTEGER column (int4 on PostgreSQL): a larger number names nothing,
# and the driver refuses to send it, so callers check ids against this first.
MAX_ID = 2**31 - 1

# Money columns are BIGINT (int8) on PostgreSQL; SQLite's INTEGER is 64-bit already.
# Totals are computed and bounded in orders/money.py before they reach a column.
Money = BigInteger().with_variant(Integer(), "sqlite")  # same storage; keeps autogenerate quiet there

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite keeps no zone, so values come back naive; PostgreSQL's timestamptz
    comes back in the session zone. Either way the application sees UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Role(str, enum.Enum):
    admin = "admin"
    host = "host"
    member = "member"
    buyer = "buyer"


class ProductKind(str, enum.Enum):
    retail = "retail"
    industrial = "industrial"


class ShowStatus(str, enum.Enum):
    scheduled = "scheduled"
    live = "live"
    reconnecting = "reconnecting"  # the publisher was lost; it may resume within the grace
    ended = "ended"


# Started and not ended: a reconnecting show is still on air (viewers stay, buying goes on).
ON_AIR = (ShowStatus.live, ShowStatus.reconnecting)


class OrderStatus(str, enum.Enum):
    pending = "pending"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"
    expired = "expired"
    refunded = "refunded"


class QuoteStatus(str, enum.Enum):
    requested = "requested"
    answered = "answered"
    accepted = "accepted"
    declined = "declined"


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings with a CHECK, not a native PostgreSQL ENUM type, so
    # adding a value later is a one-line migration on both databases.
    return Enum(cls, native_enum=False, length=16, validate_strings=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(_enum(Role))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    city: Mapped[str | None] = mapped_column(String(100))  # a member's chapter city
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Committee(Base):
    """One of the association's industry/trade committees."""

    __tablename__ = "committees"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_ko: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    # Broker commission for sales credited to this committee, in basis points.
    commission_bp: Mapped[int] = mapped_column(Integer, default=300)


class Supplier(Base):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(100))


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("moq >= 1", name="moq_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    committee_id: Mapped[int] = mapped_column(ForeignKey("committees.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Money)  # minor units of `currency`
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[ProductKind] = mapped_column(_enum(ProductKind), default=ProductKind.retail)
    moq: Mapped[int] = mapped_column(Integer, default=1)  # minimum order quantity
    image_url: Mapped[str | None] = mapped_column(String(500))
    # Shipping abroad (orders/shipping.py): weight of one unit (None: unknown, so shipping
    # is quoted), the class whose shipping table applies, and where it may go: only to
    # `ships_only_to` when that list is set, never to `never_ships_to` (ISO 3166-1 alpha-2).
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    shipping_class: Mapped[str | None] = mapped_column(String(32))
    ships_only_to: Mapped[list[str] | None] = mapped_column(JSON)
    never_ships_to: Mapped[list[str] | None] = mapped_column(JSON)

    supplier: Mapped[Supplier] = relationship(lazy="joined")
    committee: Mapped[Committee] = relationship(lazy="joined")


class PackageItem(Base):
    """An industrial package (itself a product) is made of other products."""

    __tablename__ = "package_items"

    package_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)


class Exhibition(Base):
    """A seasonal special exhibition run with a partner such as a local government."""

    __tablename__ = "exhibitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    partner: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExhibitionProduct(Base):
    __tablename__ = "exhibition_products"

    exhibition_id: Mapped[int] = mapped_column(ForeignKey("exhibitions.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    price: Mapped[int] = mapped_column(Money)  # exhibition price, product's currency


class Show(Base):
    __tablename__ = "shows"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[ShowStatus] = mapped_column(_enum(ShowStatus), default=ShowStatus.scheduled)
    exhibition_id: Mapped[int | None] = mapped_column(ForeignKey("exhibitions.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recording_path: Mapped[str | None] = mapped_column(String(500))
    current_segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", use_alter=True, name="fk_shows_current_segment")
    )
    pinned_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    slow_mode: Mapped[int] = mapped_column(Integer, default=0)  # seconds between messages
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0)

    host: Mapped[User] = relationship(lazy="joined")
    segments: Mapped[list[Segment]] = relationship(
        back_populates="show",
        order_by="Segment.position",
        foreign_keys="Segment.show_id",
        lazy="selectin",
    )


class Segment(Base):
    """A part of a show devoted to one committee's products."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    committee_id: Mapped[int] = mapped_column(ForeignKey("committees.id"))

    show: Mapped[Show] = relationship(back_populates="segments", foreign_keys=[show_id])
    committee: Mapped[Committee] = relationship(lazy="joined")
    products: Mapped[list[SegmentProduct]] = relationship(
        order_by="SegmentProduct.position", lazy="selectin"
    )


class SegmentProduct(Base):
    __tablename__ = "segment_products"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key", name="uq_orders_buyer_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_orders_buyer_key (buyer_id first) serves lookups by buyer,
    # and every index is paid for by each insert of a flash sale.
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(Money)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.pending)
    show_id: Mapped[int | None] = mapped_column(ForeignKey("shows.id"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    committee_id: Mapped[int | None] = mapped_column(ForeignKey("committees.id"))
    coview_id: Mapped[int | None] = mapped_column(ForeignKey("coview_rooms.id"))
    broker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id", use_alter=True, name="fk_orders_quote"))
    payment_provider: Mapped[str | None] = mapped_column(String(32))
    payment_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Ship-to, copied from the buyer's address book at checkout (orders/checkout.py) so a
    # later edit of the book does not move a parcel; None until checkout. Once set,
    # `total` is what the buyer pays: unit_price × quantity + shipping + duties.
    ship_name: Mapped[str | None] = mapped_column(String(100))
    ship_line1: Mapped[str | None] = mapped_column(String(200))
    ship_line2: Mapped[str | None] = mapped_column(String(200))
    ship_city: Mapped[str | None] = mapped_column(String(100))
    ship_region: Mapped[str | None] = mapped_column(String(100))
    ship_postal_code: Mapped[str | None] = mapped_column(String(16))
    ship_country: Mapped[str | None] = mapped_column(String(2))
    ship_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    shipping_amount: Mapped[int | None] = mapped_column(Money)
    duties_amount: Mapped[int | None] = mapped_column(Money)  # DDP only; None under DAP
    incoterm: Mapped[str | None] = mapped_column(String(3))  # DAP or DDP
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(String(40))
    # The order's timeline (migration 0006), set by orders/lifecycle.py with its status;
    # `cancelled_at` also holds when a pending order expired (the status says which).
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Address(Base):
    """One entry of a buyer's address book (orders/addresses.py validates it)."""

    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ShippingTable(Base):
    """What shipping costs, kept by the admin (orders/shipping.py): per scope ("default",
    "supplier:<id>" or "class:<name>") and currency, a list of zones in `zones` (JSON)."""

    __tablename__ = "shipping_tables"
    __table_args__ = (UniqueConstraint("scope", "currency", name="uq_shipping_tables_scope_currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(48))
    currency: Mapped[str] = mapped_column(String(3))
    zones: Mapped[list] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Quote(Base):
    """A B2B quote request for industrial goods or a package."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    destination_country: Mapped[str] = mapped_column(String(2))
    incoterm: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[QuoteStatus] = mapped_column(_enum(QuoteStatus), default=QuoteStatus.requested)
    unit_price: Mapped[int | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    show_id: Mapped[int | None] = mapped_column(ForeignKey("shows.id"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    committee_id: Mapped[int | None] = mapped_column(ForeignKey("committees.id"))
    coview_id: Mapped[int | None] = mapped_column(ForeignKey("coview_rooms.id"))
    broker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordingPart(Base):
    """One file of a show's recording. A show is recorded in one file per node that held
    it: another part begins when a node takes the show over from a dead origin, or
    when a restarted node's host publishes again. At the end the parts are joined."""

    __tablename__ = "recording_parts"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    path: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # its time 0, for the join


class PaymentEvent(Base):
    """Every webhook event seen, so a replayed event is refused."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_payment_events_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BrokerCredit(Base):
    """Commission owed to a member for a sale made from their co-view room."""

    __tablename__ = "broker_credits"

    id: Mapped[int] = mapped_column(primary_key=True)
    broker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    committee_id: Mapped[int | None] = mapped_column(ForeignKey("committees.id"))
    revenue: Mapped[int] = mapped_column(Money)
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    rate_bp: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the order is refunded, cancelled or expires after being credited: the row
    # stays for the audit trail, reports leave it out.
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CoviewRoom(Base):
    """A member's private room on a live show, joined by invite code."""

    __tablename__ = "coview_rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    member_limit: Mapped[int] = mapped_column(Integer, default=50)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShowViewer(Base):
    """One row per distinct viewer of a show, for total-audience reports."""

    __tablename__ = "show_viewers"
    __table_args__ = (UniqueConstraint("show_id", "viewer_key", name="uq_show_viewers_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    viewer_key: Mapped[str] = mapped_column(String(64))  # user id, or an anonymous socket's id
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthSession(Base):
    """One sign-in: a token names its session, and a revoked or expired session's token
    is refused on every node (the table is shared). Logout revokes one, "sign out
    everywhere" all of an account's."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, never reused
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExchangeRate(Base):
    """What one unit of `base` is worth in `quote`, as the admin keeps it, with the date
    the figure is from (orders/exchange_rates.py). Shown to buyers as "≈" beside a
    price; nothing is charged by it. The rate is an integer scaled by 10^12
    (`RATE_SCALE`): exact on both databases, where SQLite has no exact decimal."""

    __tablename__ = "exchange_rates"
    __table_args__ = (
        UniqueConstraint("base", "quote", name="uq_exchange_rates_pair"),
        CheckConstraint("rate_scaled > 0", name="rate_positive"),
        CheckConstraint("base <> quote", name="two_currencies"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    base: Mapped[str] = mapped_column(String(3))  # ISO 4217
    quote: Mapped[str] = mapped_column(String(3))
    rate_scaled: Mapped[int] = mapped_column(Money)  # units of `quote` per unit of `base`, × 10^12
    as_of: Mapped[date] = mapped_column(Date)  # the day the rate is from
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- Live selling: flash deals and live auctions (issue 17, items 1 and 2) ------------
# The hot state (units left, per-buyer counts, an auction's price, leader and clock)
# lives in orders/live_counters.py; these tables are the record.
from sqlalchemy import Boolean  # noqa: E402 - kept with the tables that use it (a shared file)


class DealStatus(str, enum.Enum):
    open = "open"  # counting down to its opening, or selling
    ended = "ended"


class AuctionMode(str, enum.Enum):
    sudden_death = "sudden_death"  # ends at its time, whatever the bids
    extend = "extend"  # a bid in the last N seconds resets the clock to N


class AuctionStatus(str, enum.Enum):
    open = "open"
    sold = "sold"
    unsold = "unsold"


class FlashDeal(Base):
    """A product sold at a deal price, `units` of it, at most `per_buyer_limit` each,
    between `opens_at` and `ends_at` (orders/flash_deals.py)."""

    __tablename__ = "flash_deals"
    __table_args__ = (
        CheckConstraint("units > 0", name="units_positive"),
        CheckConstraint("per_buyer_limit > 0", name="limit_positive"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    price: Mapped[int] = mapped_column(Money)  # minor units of `currency` (the product's)
    currency: Mapped[str] = mapped_column(String(3))
    units: Mapped[int] = mapped_column(Integer)
    per_buyer_limit: Mapped[int] = mapped_column(Integer)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[DealStatus] = mapped_column(_enum(DealStatus), default=DealStatus.open)
    end_reason: Mapped[str | None] = mapped_column(String(16))  # "time" or "sold_out"
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlashDealBuy(Base):
    """One accepted buy of a deal and the order it made: the deal's ledger."""

    __tablename__ = "flash_deal_buys"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("flash_deals.id"), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once when the order was cancelled or expired and its units and the buyer's
    # count went back to the running deal (orders/flash_deals.py, migration 0011).
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Auction(Base):
    """One lot (one unit of a product) auctioned in a show (orders/auctions.py)."""

    __tablename__ = "auctions"
    __table_args__ = (CheckConstraint("start_price >= 0", name="start_price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # the host who started it
    start_price: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    steps: Mapped[list] = mapped_column(JSON)  # [[from price, step], …], rising
    mode: Mapped[AuctionMode] = mapped_column(_enum(AuctionMode))
    extend_seconds: Mapped[int] = mapped_column(Integer, default=0)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)  # as scheduled; the final end once closed
    status: Mapped[AuctionStatus] = mapped_column(_enum(AuctionStatus), default=AuctionStatus.open, index=True)
    winner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    final_price: Mapped[int | None] = mapped_column(Money)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuctionBid(Base):
    """Every bid on a lot, accepted or not (and why not): kept for disputes. `seq` is
    the order in which the live state judged the bids (null when refused before it)."""

    __tablename__ = "auction_bids"

    id: Mapped[int] = mapped_column(primary_key=True)
    auction_id: Mapped[int] = mapped_column(ForeignKey("auctions.id"), index=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    bidder_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # server time
    kind: Mapped[str] = mapped_column(String(8))  # "bid" (one tap) or "max"
    amount: Mapped[int | None] = mapped_column(Money)  # the maximum this bid stood for
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))  # the refusal's error code
    price_after: Mapped[int | None] = mapped_column(Money)
    leader_after: Mapped[int | None] = mapped_column(Integer)


# --- Notifications by e-mail (issue 15, item 6): orders/notifications.py, web/notifier.py ---
from sqlalchemy import Index  # noqa: E402 - kept with the tables that use it (a shared file)


class MailStatus(str, enum.Enum):
    queued = "queued"  # waiting for its `due_at` (a first try or a retry)
    sent = "sent"  # the SMTP server took it: never sent again
    dropped = "dropped"  # no longer worth sending: too late, or the event was undone
    failed = "failed"  # gave up after `mail_max_attempts`


class MailQueue(Base):
    """One e-mail to send, written in the transaction of the event it tells of (a rolled
    back order leaves no row). `event_key` names the event ("order-paid:42"): unique, so
    the same event never makes a second mail. The text is rendered when it is sent, in
    the recipient's language, from `kind`, `params` and the rows they name."""

    __tablename__ = "mail_queue"
    __table_args__ = (Index("ix_mail_queue_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    language: Mapped[str | None] = mapped_column(String(8))  # set: this language, not the account's
    params: Mapped[dict | None] = mapped_column(JSON)  # what the mail says beyond the rows it names
    status: Mapped[MailStatus] = mapped_column(_enum(MailStatus), default=MailStatus.queued)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the next try, not before
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A worker's claim: another worker leaves the row alone until the lease runs out.
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ShowReminder(Base):
    """A signed-in user's "Remind me" on a scheduled show: one e-mail when it goes live."""

    __tablename__ = "show_reminders"
    __table_args__ = (UniqueConstraint("show_id", "user_id", name="uq_show_reminders_show_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its mail was queued


class UserLanguage(Base):
    """The language an account reads its e-mails in (one of the pages' languages),
    stored when known (registration records the page's). Without a row: Korean for
    accounts in Korea, English for the rest."""

    __tablename__ = "user_languages"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- Product images (issue 16, item 2): orders/product_images.py, web/api_images.py ---

class ProductImage(Base):
    """One picture of a product. The files are in the media store (orders/product_images.py),
    named by `content_hash` (the SHA-256 of the uploaded bytes) and a size, so their URLs
    never change and may be cached for good. `sizes` holds each size's pixel dimensions,
    {"small": [w, h], "medium": [w, h], "large": [w, h]}; `position` orders the gallery
    (0 first: the product's main picture)."""

    __tablename__ = "product_images"
    __table_args__ = (UniqueConstraint("product_id", "content_hash", name="uq_product_images_product_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    sizes: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Every product payload carries its pictures (orders/catalog.py, product_public), so they
# come with the product: one extra SELECT per query of products (batched for a list), read
# only (rows are added, moved and removed by orders/product_images.py).
Product.images = relationship(  # type: ignore[attr-defined]
    ProductImage, order_by=(ProductImage.position, ProductImage.id), lazy="selectin", viewonly=True)


# --- Coupons and member mileage (issue 17, items 3 and 5): orders/coupons.py, orders/mileage.py ---

class VoucherKind(str, enum.Enum):
    percent = "percent"  # `percent_bp` of the goods (basis points: 1000 = 10 %)
    amount = "amount"  # `amount` minor units of `currency` off


class Voucher(Base):
    """A coupon: a code typed at checkout, or a voucher the host pins in a show and viewers
    claim. Valid between `starts_at` and `ends_at`, for orders in `currency` of at least
    `min_spend`, for one show, exhibition or committee (or anything when none is set).
    `uses` counts the orders it is applied to now: raised only by a conditional UPDATE
    (`uses < total_limit`), lowered when such an order is cancelled or expires."""

    __tablename__ = "vouchers"
    __table_args__ = (
        CheckConstraint("uses >= 0 AND uses <= total_limit", name="uses_within_limit"),
        CheckConstraint("total_limit >= 1 AND per_buyer_limit >= 1", name="limits_positive"),
        CheckConstraint("min_spend >= 0", name="min_spend_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # upper case
    kind: Mapped[VoucherKind] = mapped_column(_enum(VoucherKind))
    percent_bp: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    min_spend: Mapped[int] = mapped_column(Money, default=0)
    per_buyer_limit: Mapped[int] = mapped_column(Integer, default=1)
    total_limit: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    show_id: Mapped[int | None] = mapped_column(ForeignKey("shows.id"), index=True)
    exhibition_id: Mapped[int | None] = mapped_column(ForeignKey("exhibitions.id"))
    committee_id: Mapped[int | None] = mapped_column(ForeignKey("committees.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoucherPin(Base):
    """The voucher pinned in a show (one at a time), as a product is pinned."""

    __tablename__ = "voucher_pins"

    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoucherClaim(Base):
    """A viewer's one-tap claim of a pinned voucher: it waits in their wallet for checkout."""

    __tablename__ = "voucher_claims"
    __table_args__ = (UniqueConstraint("voucher_id", "user_id", name="uq_voucher_claims_voucher_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    show_id: Mapped[int | None] = mapped_column(ForeignKey("shows.id"))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoucherUse(Base):
    """A voucher applied to an order (one per order). `released_at`: the order was
    cancelled or expired and the use given back (the row stays for the audit trail)."""

    __tablename__ = "voucher_uses"
    __table_args__ = (Index("ix_voucher_uses_voucher_buyer", "voucher_id", "buyer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    amount: Mapped[int] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrderDiscount(Base):
    """A discount line of an order: `coupon` (a voucher) or `points` (mileage redeemed),
    at most one of each. The order's `total` is its goods + shipping + duties less these
    lines, never below 0 (orders/coupons.py `recompute_total`)."""

    __tablename__ = "order_discounts"
    __table_args__ = (
        UniqueConstraint("order_id", "kind", name="uq_order_discounts_order_kind"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "coupon" or "points"
    amount: Mapped[int] = mapped_column(Money)  # minor units of the order's currency
    voucher_id: Mapped[int | None] = mapped_column(ForeignKey("vouchers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MileageProgram(Base):
    """The mileage programme's terms, kept by the admin (one row, id 1): points are minor
    units of `currency`, a redemption pays at most `redeem_share_bp` of an order's goods,
    and points expire `expiry_days` after they were earned."""

    __tablename__ = "mileage_program"

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    redeem_share_bp: Mapped[int] = mapped_column(Integer)
    expiry_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MileageRate(Base):
    """Points earned per paid order, in basis points of what the goods cost after
    discounts: for the buyer (`rate_bp`) and the broker credited (`broker_rate_bp`), per
    committee or per exhibition (an exhibition's rate wins over the committee's)."""

    __tablename__ = "mileage_rates"
    __table_args__ = (
        CheckConstraint("(committee_id IS NULL) <> (exhibition_id IS NULL)", name="one_scope"),
        CheckConstraint("rate_bp >= 0 AND broker_rate_bp >= 0", name="rates_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    committee_id: Mapped[int | None] = mapped_column(ForeignKey("committees.id"), unique=True)
    exhibition_id: Mapped[int | None] = mapped_column(ForeignKey("exhibitions.id"), unique=True)
    rate_bp: Mapped[int] = mapped_column(Integer)
    broker_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MileageAccount(Base):
    """A user's points balance: the lock row every movement takes first (so two
    checkouts at once queue), never negative."""

    __tablename__ = "mileage_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(Money, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MileageEntry(Base):
    """One movement of points: earn (+), redeem (−), reverse (− of an earn on refund, + of
    a redemption on cancellation, expiry or refund), expire (−). `key` makes each
    movement happen once. Credits (earn, a redemption given back) are lots: `remaining`
    is what is left unspent of them (spent oldest first) and expires at `expires_at`."""

    __tablename__ = "mileage_entries"
    __table_args__ = (Index("ix_mileage_entries_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8))  # earn, redeem, reverse, expire
    points: Mapped[int] = mapped_column(Money)  # signed
    balance_after: Mapped[int] = mapped_column(Money)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    remaining: Mapped[int | None] = mapped_column(Money)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- Giveaways (issue 17, item 4): orders/giveaways.py, rooms/selling.py ---

class GiveawayStatus(str, enum.Enum):
    open = "open"  # taking entries until `closes_at`
    drawn = "drawn"  # a winner was drawn (`order_id`: their zero-price order, once placed)
    no_entries = "no_entries"  # nobody entered: nothing drawn
    unfulfilled = "unfulfilled"  # drawn, but the order desk refused the prize (sold out meanwhile)


class Giveaway(Base):
    """A product given away in a show: entries by tap during a window, one draw at its end.
    `seed` stays secret until the draw (only `seed_hash`, its SHA-256, is shown while it
    is open); the draw is reproducible from `seed` and `entries_hash` (orders/giveaways.py)."""

    __tablename__ = "giveaways"

    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # who opened it: may not enter
    only: Mapped[str] = mapped_column(String(16))  # "everyone", "buyers" or "coview"
    coview_id: Mapped[int | None] = mapped_column(ForeignKey("coview_rooms.id"))  # only = "coview"
    seed: Mapped[str] = mapped_column(String(64))  # hex of 32 random bytes; revealed at the draw
    seed_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the seed's bytes, shown from the start
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[GiveawayStatus] = mapped_column(_enum(GiveawayStatus), default=GiveawayStatus.open, index=True)
    entries: Mapped[int] = mapped_column(Integer, default=0)  # raised with each entry, in its transaction
    entries_hash: Mapped[str | None] = mapped_column(String(64))
    winner_index: Mapped[int | None] = mapped_column(Integer)
    winner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The prize's order (unit price 0). Reports leave these orders out of revenue and sales.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiveawayEntry(Base):
    """One user's entry (one each: the unique constraint holds across nodes)."""

    __tablename__ = "giveaway_entries"
    __table_args__ = (UniqueConstraint("giveaway_id", "user_id", name="uq_giveaway_entries_giveaway_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    giveaway_id: Mapped[int] = mapped_column(ForeignKey("giveaways.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

