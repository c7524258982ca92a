"""The daemon's one TOML config file: frozen, strict, validated at load with every problem listed.

``load_config(path)`` reads the file once, checks it against the frozen msgspec structs below (unknown
keys, types, ranges), then checks what spans fields and sections (legs of a strategy, feeds that carry
them, secrets that exist), and raises one :class:`~scanner.errors.ConfigError` naming the file and, for
each problem, the key path, the bad value and the reason. ``reload_config`` does the same for ``SIGHUP``
and returns the old config with the errors instead of raising, so a broken edit never stops the daemon.

Relative paths (``daemon.state_dir``, ``constraints.file``, ``*_file``) resolve against the directory
of the config file. Secrets (webhook URLs with tokens, HMAC keys) normally stay out of the config: it
holds where to find them (``*_env`` / ``*_file``; an inline key only with ``allow_inline_secret``, and
inline values are hidden from ``repr``). :func:`resolve_webhook` reads them into
:class:`~scanner.credentials.Secret` objects; their values never appear in an error message.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from feeds.instruments import InstrumentId, Kind, Market, Venue
from feeds.venues import FUNDING_STREAMED, entries
from rules.candidates import HELD_STRATEGIES, Strategy, quote_problem
from rules.fees import FeeProfile
from scanner.config_schema import collect_problems
from scanner.credentials import CredentialError, Secret, absolute_url_problem, read_credential
from scanner.errors import ConfigError

# ---------------------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------------------


class Direction(StrEnum):
    """Which way round a pair of legs is traded; what "forward" means depends on the strategy.

    cex_cex: buy the first leg, sell the second. perp_spot_basis: long spot, short perp (no borrow);
    reverse is short spot on margin (borrow) and long perp. funding_carry_cex_cex: long the first perp,
    short the second. cex_dex: buy on the CEX, sell on the DEX.
    """

    BOTH = "both"
    FORWARD = "forward"
    REVERSE = "reverse"


class WebhookFormat(StrEnum):
    GENERIC = "generic"  # our JSON body, HMAC-signed
    SLACK = "slack"  # Slack incoming webhook {"text": ...}
    DISCORD = "discord"  # Discord webhook {"content": ..., "embeds": [...]}
    TELEGRAM = "telegram"  # Bot API sendMessage; url is https://api.telegram.org/bot<token>/sendMessage


AlertOn = Literal["qualified", "disqualified"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_Tier = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]  # a tier name of the fee table: VIP1, Lv1
_Usd = Annotated[float, msgspec.Meta(gt=0, le=1e9)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every section: frozen, keyword-only, and a typo is an error, never a silent default."""


# ---------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------


class JournalConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[daemon.journal]``: durability and rotation of the JSONL event journal."""

    fsync_every: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 64  # fsync after this many events...
    fsync_interval_ms: Annotated[int, msgspec.Meta(ge=1, le=3_600_000)] = 1000  # ...or this long after the first
    rotate_bytes: Annotated[int, msgspec.Meta(ge=4096, le=1 << 40)] = 64 << 20  # new file past this size
    rotate_interval_s: Annotated[int, msgspec.Meta(ge=0, le=31 * 86400)] = 86400  # and this often; 0 = never


class DaemonConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[daemon]``: where state lives and how long a graceful shutdown may take."""

    state_dir: _NonEmpty = "state"  # journal/ and outbox/ live under it
    shutdown_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    journal: JournalConfig = JournalConfig()

    @property
    def journal_dir(self) -> Path:
        return Path(self.state_dir) / "journal"

    @property
    def outbox_dir(self) -> Path:
        return Path(self.state_dir) / "outbox"


class MetricsConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus ``/metrics`` endpoint."""

    listen: _NonEmpty = "127.0.0.1:9464"  # host:port, [v6]:port; port 0 picks a free one
    per_candidate_labels: bool = False  # unbounded label sets are opt-in

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class FeedConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[feeds]]``: one venue product line and the canonical symbols to stream from it."""

    venue: Venue
    market: Market
    symbols: Annotated[tuple[_NonEmpty, ...], msgspec.Meta(min_length=1)]  # BTC-USDT, BTC-USDT-PERP
    ws_url: str | None = None  # override the venue's websocket URL (replay exchange, testnet)
    rest_url: str | None = None  # override the venue's REST base URL
    # Updates stamped further ahead of this host's wall clock are refused as malformed (feeds.feed.FeedConfig).
    # At least 1 s: the check compares whole milliseconds, and a skew that small would refuse every update.
    max_venue_ahead_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 300.0

    def instruments(self) -> tuple[InstrumentId, ...]:
        return tuple(InstrumentId.parse(f"{self.venue}:{self.market}:{s}") for s in self.symbols)


class ConstraintsConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[constraints]``: the execution-constraints file of ``rules/`` and how to read it."""

    file: _NonEmpty
    fee_profile: FeeProfile = FeeProfile.TAKER_DEFAULT
    vip_tier: dict[Venue, _Tier] = {}  # the account's fee tier per venue; venue default tier otherwise
    strategy_leverage_overrides: dict[Strategy, Annotated[float, msgspec.Meta(gt=0, le=1000)]] = {}


class StrategyConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[strategies]]``: candidates = legs pairs × directions × sizes.

    Legs come either from ``pairs`` (each written in its forward orientation) or from ``instruments``
    (every compatible pair among them, in list order); cex_dex takes ``instruments`` (its CEX legs)
    and ``dex_pool`` instead.
    """

    strategy: Strategy
    instruments: tuple[_NonEmpty, ...] = ()
    pairs: tuple[tuple[_NonEmpty, _NonEmpty], ...] = ()
    sizes_usd: Annotated[tuple[_Usd, ...], msgspec.Meta(min_length=1)]
    horizon_hours: Annotated[float, msgspec.Meta(gt=0, le=8760)] | None = None  # funding strategies only
    direction: Direction = Direction.BOTH
    passive_leg: Literal[0, 1] = 0  # the leg quoted as maker under fee_profile = maker_inventory
    rebalance_cost_usd: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 0.0  # moving inventory back, per trade
    dex_pool: _NonEmpty | None = None  # cex_dex only: the DEX quote source

    def legs(self) -> tuple[tuple[InstrumentId, InstrumentId], ...]:
        """Leg pairs in forward orientation (cex_dex: empty, its DEX leg is not an instrument)."""
        return _strategy_legs(self)[0]

    def directions(self) -> tuple[Direction, ...]:
        """FORWARD and/or REVERSE (``both`` expanded)."""
        if self.direction is Direction.BOTH:
            return (Direction.FORWARD, Direction.REVERSE)
        return (self.direction,)

    def cex_instruments(self) -> tuple[InstrumentId, ...]:
        return tuple(InstrumentId.parse(s) for s in self.instruments)


class EngineConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[engine]``: the candidate state machine."""

    hysteresis_band_bps: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 2.0  # drop below min edge minus this
    # Qualified this long → alert. At least 1 ms: an episode's id derives from its start, and with no dwell two
    # episodes could start within one market millisecond (the same id: the second's alerts taken as repeats).
    min_qualified_dwell_ms: Annotated[int, msgspec.Meta(ge=1, le=3_600_000)] = 500
    # Qualified and dwelling candidates are re-checked this often when no update comes (a silent feed ages).
    recheck_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 250
    # After a restart, a resumed candidate waits this long for its books before missing data counts
    # (scanner.resume); candidates are resumed only if the daemon was down at most resume_max_downtime_s.
    resume_grace_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 120_000
    resume_max_downtime_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 900.0


class FundingAssumption(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[funding_assumptions]]``: a stated funding rate for a perpetual whose feed carries none."""

    instrument: _NonEmpty  # a -PERP canonical id
    rate: Annotated[float, msgspec.Meta(ge=-0.05, le=0.05)]  # fraction per interval: 0.0001 = 0.01 %
    # No venue settles funding more often than hourly: a shorter interval is a typo (and one under a millisecond
    # would round to 0 ms, an interval nothing can be counted in).
    interval_hours: Annotated[float, msgspec.Meta(ge=0.25, le=168)] = 8.0
    reason: Annotated[str, msgspec.Meta(min_length=3)]  # why this number (shown on every decision using it)

    def instrument_id(self) -> InstrumentId:
        return InstrumentId.parse(self.instrument)


class WebhookConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[webhooks]]``: an alert destination. The URL and the HMAC key are secrets."""

    name: _Name  # metric label and outbox key: lowercase, stable
    url: str | None = None  # inline URL (exactly one of url / url_env / url_file)
    url_env: _EnvName | None = None
    url_file: _NonEmpty | None = None
    format: WebhookFormat = WebhookFormat.GENERIC
    secret_env: _EnvName | None = None  # HMAC-SHA256 key (required for generic)
    secret_file: _NonEmpty | None = None
    secret: str | None = None  # inline key: refused unless allow_inline_secret = true
    allow_inline_secret: bool = False
    telegram_chat_id: _NonEmpty | None = None  # telegram only
    rate_limit_per_min: Annotated[int, msgspec.Meta(ge=1, le=6000)] = 30
    cooldown_s: Annotated[float, msgspec.Meta(ge=0, le=7 * 86400)] = 300.0  # per (event, dedup key)
    on: Annotated[tuple[AlertOn, ...], msgspec.Meta(min_length=1)] = ("qualified",)
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    retry_initial_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 1.0
    retry_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0

    def __repr__(self) -> str:
        # An inline url or secret is a credential: never in a repr (logs, tracebacks, test output).
        url = "<hidden>" if self.url is not None else None
        secret = "<hidden>" if self.secret is not None else None
        return (
            f"WebhookConfig(name={self.name!r}, format={self.format.value!r}, url={url}, url_env={self.url_env!r}, "
            f"url_file={self.url_file!r}, secret={secret}, secret_env={self.secret_env!r}, "
            f"secret_file={self.secret_file!r}, on={self.on!r})"
        )


class LoggingConfig(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[logging]``."""

    level: LogLevel = "info"
    json: bool | Literal["auto"] = "auto"  # auto: JSON unless stderr is a terminal


class Config(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file."""

    daemon: DaemonConfig = DaemonConfig()
    metrics: MetricsConfig = MetricsConfig()
    feeds: Annotated[tuple[FeedConfig, ...], msgspec.Meta(min_length=1)]
    constraints: ConstraintsConfig
    strategies: Annotated[tuple[StrategyConfig, ...], msgspec.Meta(min_length=1)]
    engine: EngineConfig = EngineConfig()
    funding_assumptions: tuple[FundingAssumption, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    logging: LoggingConfig = LoggingConfig()

    def instruments(self) -> tuple[InstrumentId, ...]:
        """Every instrument the feeds stream, in config order."""
        return tuple(i for f in self.feeds for i in f.instruments())


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and return the config; raise ConfigError listing every problem."""
    config, problems = _load(Path(path))
    if config is None or problems:
        raise ConfigError(str(path), problems)
    return config


@dataclass(frozen=True, slots=True)
class Reload:
    """Outcome of a reload: the config in force afterwards and what changed."""

    config: Config  # the new config, or the old one when ``error`` is set
    error: ConfigError | None
    changed: tuple[str, ...] = ()  # top-level sections that differ from the old config
    restart_required: tuple[str, ...] = ()  # changed keys that only take effect after a restart

    @property
    def ok(self) -> bool:
        return self.error is None


# Sections the running daemon cannot change in place: it keeps their old values until a restart and
# reports every key of them that a reload changed (``restart_required``).
RESTART_SECTIONS = ("feeds", "daemon", "metrics", "logging")


def restart_required(old: Config, new: Config) -> tuple[str, ...]:
    """Dotted keys of :data:`RESTART_SECTIONS` that differ between ``old`` and ``new`` (``feeds`` as a whole)."""
    out: list[str] = []

    def walk(prefix: str, a: object, b: object) -> None:
        if a == b:
            return
        if isinstance(a, msgspec.Struct) and type(a) is type(b):
            for f in msgspec.structs.fields(a):
                walk(f"{prefix}.{f.name}", getattr(a, f.name), getattr(b, f.name))
        else:
            out.append(prefix)

    for section in RESTART_SECTIONS:
        a, b = getattr(old, section), getattr(new, section)
        if section == "feeds":
            if a != b:
                out.append(section)
        else:
            walk(section, a, b)
    return tuple(out)


def reload_config(path: str | os.PathLike[str], current: Config) -> Reload:
    """Validate ``path`` anew: the new config on success, otherwise ``current`` and the error (never raises)."""
    try:
        new = load_config(path)
    except ConfigError as exc:
        return Reload(config=current, error=exc)
    changed = tuple(f.name for f in msgspec.structs.fields(Config) if getattr(new, f.name) != getattr(current, f.name))
    return Reload(config=new, error=None, changed=changed, restart_required=restart_required(current, new))


def _load(path: Path) -> tuple[Config | None, list[tuple[str, str]]]:
    try:
        # One read, so a file being rewritten is seen either whole or as a TOML error.
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        return None, [("(file)", "not found")]
    except OSError as exc:
        return None, [("(file)", f"cannot be read: {exc.strerror}")]
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, [("(file)", f"not UTF-8 text (byte {exc.start})")]
    except tomllib.TOMLDecodeError as exc:
        return None, [("(file)", f"TOML syntax error: {exc}")]
    problems = collect_problems(raw, Config, secret_keys=_SECRET_KEYS)
    # Build every section that is sound on its own, so the checks across fields still run on those
    # (a typo in [engine] must not hide a leg that no feed streams).
    broken = {re.split(r"[.\[]", key, maxsplit=1)[0] for key, _ in problems}
    sections: dict[str, Any] = {}
    for field in msgspec.structs.fields(Config):
        if field.name in broken:
            continue
        if field.name in raw:
            try:
                sections[field.name] = msgspec.convert(raw[field.name], field.type, strict=True)
            except msgspec.ValidationError as exc:  # the walker missed it: still a precise message
                problems.append((field.name, str(exc)))
                continue
        elif field.required:
            continue
        else:
            sections[field.name] = field.default
    placeholders: dict[str, Any] = {"feeds": (), "strategies": (), "constraints": ConstraintsConfig(file="")}
    config = _resolve_paths(Config(**{**placeholders, **sections}), path.parent.resolve())
    problems += _check(config, intact=set(sections))
    return (None if problems else config), problems


# Their values never appear in error messages: the secrets, and where the secrets are read from (a secret
# typed into secret_env by mistake would otherwise be quoted by the name check).
_SECRET_KEYS = frozenset({"url", "secret", "url_env", "url_file", "secret_env", "secret_file"})


def _resolve_paths(config: Config, base: Path) -> Config:
    def absolute(p: str) -> str:
        return str(base / p) if not Path(p).is_absolute() else p

    def opt(p: str | None) -> str | None:
        return None if p is None else absolute(p)

    replace = msgspec.structs.replace
    return replace(
        config,
        daemon=replace(config.daemon, state_dir=absolute(config.daemon.state_dir)),
        constraints=replace(config.constraints, file=absolute(config.constraints.file)),
        webhooks=tuple(replace(w, url_file=opt(w.url_file), secret_file=opt(w.secret_file)) for w in config.webhooks),
    )


# ---------------------------------------------------------------------------------------------------------
# Checks spanning fields and sections
# ---------------------------------------------------------------------------------------------------------


def _check(config: Config, intact: set[str]) -> list[tuple[str, str]]:
    """Checks across fields and sections, on the sections in ``intact`` (the others are placeholders)."""
    problems: list[tuple[str, str]] = []
    add = problems.append

    if "metrics" in intact:
        try:
            _split_listen(config.metrics.listen)
        except ValueError as exc:
            add(("metrics.listen", f"got {config.metrics.listen!r}: {exc}"))
    state = Path(config.daemon.state_dir)
    if "daemon" in intact and state.exists() and not state.is_dir():
        add(("daemon.state_dir", f"got {config.daemon.state_dir!r}: exists and is not a directory"))
    if "constraints" in intact and not Path(config.constraints.file).is_file():
        add(("constraints.file", f"got {config.constraints.file!r}: file not found"))

    # None: [[feeds]] itself is broken, so "not streamed" cannot be judged.
    streamed = _check_feeds(config, add) if "feeds" in intact else None

    for i, strategy in enumerate(config.strategies):
        _check_strategy(f"strategies[{i}]", strategy, streamed, add)
    if "strategies" in intact:
        _check_duplicate_candidates(config.strategies, add)

    seen_assumed: set[InstrumentId] = set()
    for i, fa in enumerate(config.funding_assumptions):
        key = f"funding_assumptions[{i}].instrument"
        try:
            inst = fa.instrument_id()
        except ValueError as exc:
            add((key, str(exc)))
            continue
        if inst.kind is not Kind.PERP:
            add((key, f"got {fa.instrument!r}: funding applies to perpetuals (-PERP) only"))
        elif inst in seen_assumed:
            add((key, f"got {fa.instrument!r}: a second assumption for the same instrument"))
        elif streamed is not None and inst not in streamed:
            add((key, f"got {fa.instrument!r}: not streamed by any [[feeds]] entry"))
        seen_assumed.add(inst)
    if "funding_assumptions" in intact:
        for i, strategy in enumerate(config.strategies):
            _check_funding_reaches(f"strategies[{i}]", strategy, seen_assumed, add)

    names: set[str] = set()
    for i, wh in enumerate(config.webhooks):
        if wh.name in names:
            add((f"webhooks[{i}].name", f"got {wh.name!r}: duplicate webhook name"))
        names.add(wh.name)
        _check_webhook(f"webhooks[{i}]", wh, add)
    return problems


def _check_feeds(config: Config, add: Callable[[tuple[str, str]], None]) -> set[InstrumentId]:
    streamed: set[InstrumentId] = set()
    markets: dict[Venue, list[str]] = {}
    for entry in entries():
        markets.setdefault(entry.venue, []).append(str(entry.market))
    for i, feed in enumerate(config.feeds):
        if str(feed.market) not in markets.get(feed.venue, ()):
            known = ", ".join(markets.get(feed.venue, ()))
            add((f"feeds[{i}].market", f"got {str(feed.market)!r}: {feed.venue} has no such market here ({known})"))
            continue
        for j, sym in enumerate(feed.symbols):
            key = f"feeds[{i}].symbols[{j}]"
            try:
                inst = InstrumentId.parse(f"{feed.venue}:{feed.market}:{sym}")
            except ValueError as exc:
                add((key, f"got {sym!r}: {str(exc).split(': ', 1)[-1]}"))
                continue
            if inst in streamed:
                add((key, f"got {sym!r}: already streamed by another entry for {feed.venue}:{feed.market}"))
            streamed.add(inst)
        for attr, schemes in (("ws_url", ("ws", "wss")), ("rest_url", ("http", "https"))):
            url = getattr(feed, attr)
            problem = absolute_url_problem(url, schemes) if url is not None else None
            if problem is not None:
                add((f"feeds[{i}].{attr}", f"got {url!r}: {problem}"))
    return streamed


_TWO_LEGGED = {
    # strategy: (kind of first leg, kind of second leg, legs on different venues)
    Strategy.CEX_CEX: (None, None, True),
    Strategy.FUNDING_CARRY_CEX_CEX: (Kind.PERP, Kind.PERP, True),
    Strategy.PERP_SPOT_BASIS: (Kind.SPOT, Kind.PERP, False),
}


def _strategy_legs(s: StrategyConfig) -> tuple[tuple[tuple[InstrumentId, InstrumentId], ...], list[tuple[str, str]]]:
    """Forward leg pairs of a two-legged strategy and the problems found building them."""
    problems: list[tuple[str, str]] = []
    if s.strategy not in _TWO_LEGGED:
        return (), problems
    first_kind, second_kind, cross_venue = _TWO_LEGGED[s.strategy]

    def parse(key: str, text: str) -> InstrumentId | None:
        try:
            instrument = InstrumentId.parse(text)
        except ValueError as exc:
            problems.append((key, str(exc)))
            return None
        problem = quote_problem(instrument)
        if problem is not None:
            problems.append((key, f"got {text!r}: {problem}"))
            return None
        return instrument

    def why_not(a: InstrumentId, b: InstrumentId) -> str | None:
        if first_kind is not None and a.kind is not first_kind:
            return f"first leg must be {first_kind}, got {a}"
        if second_kind is not None and b.kind is not second_kind:
            return f"second leg must be {second_kind}, got {b}"
        if first_kind is None and a.kind is not b.kind:
            return f"legs must be the same kind, got {a.kind} and {b.kind}"
        if (a.base, a.quote) != (b.base, b.quote):
            return f"legs must trade the same pair, got {a.base}-{a.quote} and {b.base}-{b.quote}"
        if a == b or (cross_venue and a.venue == b.venue):
            return f"legs must be on different venues, got {a} and {b}"
        return None

    legs: list[tuple[InstrumentId, InstrumentId]] = []
    if s.pairs:
        for i, (ta, tb) in enumerate(s.pairs):
            a, b = parse(f"pairs[{i}][0]", ta), parse(f"pairs[{i}][1]", tb)
            if a is None or b is None:
                continue
            reason = why_not(a, b)
            if reason:
                problems.append((f"pairs[{i}]", reason))
            else:
                legs.append((a, b))
        return tuple(legs), problems
    parsed = [parse(f"instruments[{i}]", t) for i, t in enumerate(s.instruments)]
    insts = [p for p in parsed if p is not None]
    if len(insts) < len(parsed):
        return (), problems
    for i, a in enumerate(insts):
        for b in insts[i + 1 :]:
            if why_not(a, b) is None:
                legs.append((a, b))
            elif why_not(b, a) is None:  # basis: the perp was listed before the spot
                legs.append((b, a))
    if not legs:
        problems.append(("instruments", f"no two of these form a valid {s.strategy} pair"))
        return (), problems
    paired = {i for pair in legs for i in pair}
    for i, inst in enumerate(insts):
        if inst not in paired:
            problems.append((f"instruments[{i}]", f"got {str(inst)!r}: forms no valid {s.strategy} pair"))
    return tuple(legs), problems


def _check_funding_reaches(
    prefix: str, s: StrategyConfig, assumed: set[InstrumentId], add: Callable[[tuple[str, str]], None]
) -> None:
    """A held strategy's perpetual legs need a rate: a market whose funding is streamed, or an assumption;
    else every decision would be funding_unknown for as long as the daemon runs."""
    if s.strategy not in HELD_STRATEGIES:
        return
    legs, _ = _strategy_legs(s)
    perps = sorted({i for pair in legs for i in pair if i.kind is Kind.PERP}, key=str)
    for inst in perps:
        if (inst.venue, inst.market) not in FUNDING_STREAMED and inst not in assumed:
            why = f"no funding stream of {inst.venue} {inst.market} here: state its rate in [[funding_assumptions]]"
            add((prefix, f"{inst}: {why}"))


def _check_strategy(
    prefix: str, s: StrategyConfig, streamed: set[InstrumentId] | None, add: Callable[[tuple[str, str]], None]
) -> None:
    funding = s.strategy in HELD_STRATEGIES
    if funding and s.horizon_hours is None:
        add((f"{prefix}.horizon_hours", f"missing: {s.strategy} counts funding settlements over a horizon"))
    if not funding and s.horizon_hours is not None:
        add((f"{prefix}.horizon_hours", f"got {s.horizon_hours!r}: {s.strategy} has no holding horizon"))
    if len(set(s.sizes_usd)) != len(s.sizes_usd):
        add((f"{prefix}.sizes_usd", f"got {list(s.sizes_usd)!r}: duplicate sizes"))

    if s.strategy is Strategy.CEX_DEX:
        # The rules evaluate a DEX leg (rules.dex) from a pool quote, but no feed of this daemon supplies
        # one yet: every decision would be book_not_ready for as long as it runs, silently.
        add((f"{prefix}.strategy", "cex_dex needs DEX pool quotes, and no feed of this daemon supplies them yet"))
        if s.pairs:
            add((f"{prefix}.pairs", "cex_dex takes instruments (its CEX legs) and dex_pool, not pairs"))
        if not s.instruments:
            add((f"{prefix}.instruments", "missing: the CEX instruments to quote against the DEX"))
        # The swap's gas cost comes with each DEX quote (rules.dex), not from the config.
        if s.dex_pool is None:
            add((f"{prefix}.dex_pool", "missing: required by cex_dex"))
        if s.passive_leg != 0:
            add((f"{prefix}.passive_leg", "got 1: the DEX leg is a swap (always taker), so passive_leg must be 0"))
        for i, text in enumerate(s.instruments):
            try:
                inst = InstrumentId.parse(text)
            except ValueError as exc:
                add((f"{prefix}.instruments[{i}]", str(exc)))
                continue
            if streamed is not None and inst not in streamed:
                add((f"{prefix}.instruments[{i}]", f"got {text!r}: not streamed by any [[feeds]] entry"))
            problem = quote_problem(inst)
            if problem is not None:
                add((f"{prefix}.instruments[{i}]", f"got {text!r}: {problem}"))
        return

    if s.dex_pool is not None:
        add((f"{prefix}.dex_pool", f"got {s.dex_pool!r}: only cex_dex takes dex_pool"))
    if bool(s.pairs) == bool(s.instruments):
        add((prefix, "give exactly one of instruments (every valid pair) or pairs (explicit legs)"))
        return
    legs, problems = _strategy_legs(s)
    for key, reason in problems:
        add((f"{prefix}.{key}", reason))
    used = {i for pair in legs for i in pair}
    listed = (
        [(f"pairs[{i}][{j}]", t) for i, p in enumerate(s.pairs) for j, t in enumerate(p)]
        if s.pairs
        else [(f"instruments[{i}]", t) for i, t in enumerate(s.instruments)]
    )
    for key, text in listed:
        try:
            inst = InstrumentId.parse(text)
        except ValueError:
            continue  # already reported
        if inst in used and streamed is not None and inst not in streamed:
            add((f"{prefix}.{key}", f"got {text!r}: not streamed by any [[feeds]] entry"))


def candidate_id(strategy: Strategy, direction: Direction, legs: tuple[str, str], size_usd: float) -> str:
    """The stable id of a candidate (see :mod:`scanner.candidates`): what it is, not where it was configured."""
    return f"{strategy.value}:{direction.value}:{legs[0]}|{legs[1]}:{size_text(size_usd)}"


def size_text(size_usd: float) -> str:
    """A size as ids spell it: every digit it has (``:g`` kept six, so 1234567 and 1234568 were one id),
    whole sizes without a fraction (``1000``, as before)."""
    return str(int(size_usd)) if size_usd.is_integer() else repr(size_usd)


def _strategy_candidate_ids(s: StrategyConfig) -> list[tuple[str, str]]:
    """(key path within the strategy, candidate id) of every candidate the entry describes."""
    out: list[tuple[str, str]] = []
    sizes = tuple(dict.fromkeys(s.sizes_usd))  # a repeated size is reported on its own (sizes_usd)
    if s.strategy is Strategy.CEX_DEX:
        for i, text in enumerate(s.instruments):
            try:
                legs = (str(InstrumentId.parse(text)), s.dex_pool or "")
            except ValueError:
                continue  # reported by _check_strategy
            key = f"instruments[{i}]"
            out += [(key, candidate_id(s.strategy, d, legs, z)) for d in s.directions() for z in sizes]
        return out
    legs_of = _strategy_legs(s)[0]
    if s.pairs:
        # Each valid pair in order; map it back to its index among the configured pairs.
        keyed = []
        for i, (ta, tb) in enumerate(s.pairs):
            try:
                pair = (InstrumentId.parse(ta), InstrumentId.parse(tb))
            except ValueError:
                continue
            if pair in legs_of:
                keyed.append((f"pairs[{i}]", pair))
    else:
        keyed = [("instruments", pair) for pair in legs_of]
    for key, (a, b) in keyed:
        out += [(key, candidate_id(s.strategy, d, (str(a), str(b)), z)) for d in s.directions() for z in sizes]
    return out


def _check_duplicate_candidates(strategies: tuple[StrategyConfig, ...], add: Callable[[tuple[str, str]], None]) -> None:
    """Two entries (or two pairs of one entry) describing the same candidate: one problem per repeated place."""
    first: dict[str, str] = {}
    for i, s in enumerate(strategies):
        reported: set[str] = set()
        for key, cid in _strategy_candidate_ids(s):
            path = f"strategies[{i}].{key}"
            where = first.get(cid)
            if where is None:
                first[cid] = path
            elif path not in reported:
                reported.add(path)
                add((path, f"duplicate of candidate {cid} (from {where})"))


def _check_webhook(prefix: str, wh: WebhookConfig, add: Callable[[tuple[str, str]], None]) -> None:
    url_sources = [k for k in ("url", "url_env", "url_file") if getattr(wh, k) is not None]
    if len(url_sources) != 1:
        add((prefix, f"give exactly one of url, url_env, url_file (got {', '.join(url_sources) or 'none'})"))
    secret_sources = [k for k in ("secret", "secret_env", "secret_file") if getattr(wh, k) is not None]
    if len(secret_sources) > 1:
        add((prefix, f"give at most one of secret, secret_env, secret_file (got {', '.join(secret_sources)})"))
    if wh.secret is not None and not wh.allow_inline_secret:
        add(
            (
                f"{prefix}.secret",
                "an inline secret is refused: use secret_env or secret_file (or set allow_inline_secret = true)",
            )
        )
    if wh.format is WebhookFormat.GENERIC and not secret_sources:
        add((prefix, "a generic webhook is HMAC-signed: give secret_env or secret_file"))
    if (wh.format is WebhookFormat.TELEGRAM) != (wh.telegram_chat_id is not None):
        add((f"{prefix}.telegram_chat_id", "required by format = 'telegram' and only by it"))
    if len(set(wh.on)) != len(wh.on):
        add((f"{prefix}.on", f"got {list(wh.on)!r}: duplicate events"))
    if wh.retry_max_s < wh.retry_initial_s:
        add((f"{prefix}.retry_max_s", f"got {wh.retry_max_s!r}: below retry_initial_s ({wh.retry_initial_s!r})"))
    if len(url_sources) == 1:
        try:
            _read_source(wh, "url")
        except CredentialError as exc:
            add((f"{prefix}.{url_sources[0]}", str(exc)))
    if len(secret_sources) == 1:
        try:
            _read_source(wh, "secret")
        except CredentialError as exc:
            add((f"{prefix}.{secret_sources[0]}", str(exc)))


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ResolvedWebhook:
    """A webhook with its URL and HMAC key read from where the config says they are."""

    config: WebhookConfig
    url: Secret
    secret: Secret | None

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"ResolvedWebhook(name={self.config.name!r}, format={self.config.format.value!r})"


def resolve_webhook(wh: WebhookConfig) -> ResolvedWebhook:
    """Read the URL and key of a validated webhook (ConfigError if they changed since validation)."""
    try:
        url = _read_source(wh, "url")
        secret = _read_source(wh, "secret") if wh.secret or wh.secret_env or wh.secret_file else None
    except CredentialError as exc:
        raise ConfigError(f"webhook {wh.name!r}", [(wh.name, str(exc))]) from None
    return ResolvedWebhook(config=wh, url=Secret(url), secret=None if secret is None else Secret(secret))


def _read_source(wh: WebhookConfig, what: Literal["url", "secret"]) -> str:
    return read_credential(
        getattr(wh, what), getattr(wh, f"{what}_env"), getattr(wh, f"{what}_file"), is_url=what == "url"
    )


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port_s = listen.rpartition(":")
    if not sep or not host:
        raise ValueError("expected host:port (e.g. 127.0.0.1:9464 or [::1]:9464)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError("port must be an integer in 0..65535")
    return host, int(port_s)
