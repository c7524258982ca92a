"""Instrument metadata from recorded REST answers (cryptofeed ``EXCH.0``: ``<url> -> <epoch_s>: <body>``).

The bodies are the venues' real ``exchangeInfo`` / ``instruments`` / ``AssetPairs`` answers. Two uses:

* the replay exchange serves them on loopback (``ReplayExchange(rest_bodies=...)``), so that ``arbscan
  run`` against a replay loads its metadata over REST exactly as it does live;
* :func:`catalog_from_bodies` decodes them with the same parsers into an :class:`InstrumentCatalog`
  without any HTTP (the demo's explicit metadata).

A body is keyed by :data:`RestKey` (venue, path, sorted query), the same for a recorded URL and for a
request arriving at the replay exchange (whose path is relative to the venue's mount).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from feeds.errors import RecordingError
from feeds.instruments import Market, Venue
from feeds.metadata import InstrumentCatalog
from feeds.metadata_loader import MAX_PAGES, REST_URLS, source
from feeds.protocol import RestRequest

#: (venue, path, sorted query pairs): one REST resource.
RestKey = tuple[Venue, str, tuple[tuple[str, str], ...]]

_HOSTS = {urlsplit(url).hostname: venue for (venue, _market), url in REST_URLS.items()}


def rest_key(venue: Venue, path: str, query: Iterable[tuple[str, str]]) -> RestKey:
    return venue, path, tuple(sorted(query))


def request_key(venue: Venue, request: RestRequest) -> RestKey:
    return rest_key(venue, request.path, request.params.items())


def read_rest_bodies(paths: Sequence[str | Path]) -> dict[RestKey, bytes]:
    """Every recorded REST body of the given ``EXCH.0`` files by resource (the first answer of each)."""
    out: dict[RestKey, bytes] = {}
    for given in paths:
        path = Path(given)
        try:
            lines = path.read_bytes().split(b"\n")
        except OSError as exc:
            raise RecordingError(str(path), f"cannot read: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            target, sep, rest = line.partition(b" -> ")
            if not sep:
                continue  # "configuration: {...}" and the trailing empty line
            stamp, colon, body = rest.partition(b": ")
            if not colon or not body:
                raise RecordingError(str(path), f"no '<epoch>: <body>' after the URL ({stamp[:40]!r})", line=number)
            url = urlsplit(target.decode("utf-8", "replace"))
            venue = _HOSTS.get(url.hostname)
            if venue is None:
                raise RecordingError(str(path), f"REST host {url.hostname!r} is no venue we know", line=number)
            out.setdefault(rest_key(venue, url.path, parse_qsl(url.query)), body)
    return out


def catalog_from_bodies(bodies: Mapping[RestKey, bytes], markets: Iterable[tuple[Venue, Market]]) -> InstrumentCatalog:
    """Decode the recorded metadata of each (venue, market) into a catalog; one not recorded is an error."""
    catalog = InstrumentCatalog()
    for venue, market in markets:
        src = source(venue, market)
        request: RestRequest | None = src.first
        metas = []
        for _ in range(MAX_PAGES):
            if request is None:
                break
            body = bodies.get(request_key(venue, request))
            if body is None:
                raise RecordingError(f"{venue}/{market}", f"no recorded answer to {request.path} {request.params}")
            page, request = src.parse(body)
            metas.extend(page.instruments)
        catalog.replace(venue, market, metas)
    return catalog
