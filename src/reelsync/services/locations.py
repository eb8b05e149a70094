"""Resolving parsed ``[party:]path`` values to concrete (site, volume, relative path) endpoints.

Rules: no party or the workspace code is the main site; ``site=CODE`` that site (enabled). User and
client parties are not supported. A relative path lies in the default volume; an absolute path must
lie under one of the volume prefixes at the party's site (the longest wins), else PathError. A
volume must have a path at the site it is used at. Workspace lookups come from the catalog
(:mod:`reelsync.services.catalog`), so a submit costs no query for them, nor per task.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from reelsync.domain.ids import is_entity_id
from reelsync.domain.party import DEFAULT_VOLUME, Location, Party, PartyKind
from reelsync.errors import NotFoundError, NotSupportedError, PathError, ValidationError
from reelsync.services import catalog
from reelsync.services.catalog import SiteRef, VolumeRef

__all__ = ["Endpoint", "Resolver", "SiteRef", "VolumeRef"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    site: SiteRef
    volume: VolumeRef
    path: str  # relative to the volume root, "" = the root


class Resolver:
    """Workspace lookups for one request (sites, volumes, prefixes), loaded once."""

    def __init__(self, session: Session) -> None:
        known = catalog.current(session)
        self.sites = known.sites
        self.volumes = known.volumes
        self.prefixes = known.prefixes
        self._site_cache: dict[Party, SiteRef] = {}
        self._site_by_object: dict[int, SiteRef] = {}
        self._objects: dict[int, Party] = {}
        self._volume_cache: dict[str | None, VolumeRef] = {}

    def site_by_id(self, site_id: str) -> SiteRef:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise NotFoundError(f"no site {site_id!r}")

    def volume_by_id(self, volume_id: str) -> VolumeRef:
        for volume in self.volumes:
            if volume.id == volume_id:
                return volume
        raise NotFoundError(f"no volume {volume_id!r}")

    def site(self, party: Party) -> SiteRef:
        # Keyed by identity first: one submit reuses a few Party objects for every task, and
        # hashing a dataclass 200,000 times costs more than the lookup itself.
        cached = self._site_by_object.get(id(party))
        if cached is not None and self._objects[id(party)] is party:
            return cached
        cached = self._site_cache.get(party) or self._find_site(party)
        self._site_by_object[id(party)] = cached
        self._objects[id(party)] = party
        return cached

    def _find_site(self, party: Party) -> SiteRef:
        if party.kind is PartyKind.WORKSPACE:
            found = next((s for s in self.sites if s.main), None)
            if found is None:
                raise NotFoundError("the workspace has no main site")
        elif party.kind is PartyKind.SITE:
            code = (party.value or "").lower()
            found = next((s for s in self.sites if s.code == code or s.id == party.value), None)
            if found is None:
                raise NotFoundError(f"no site {party.value!r}", hint="see: reelsync site list")
            if not found.enabled:
                raise ValidationError(f"site {found.code} is disabled")
        else:
            raise NotSupportedError(
                f"{party.kind.value} parties ({party.value}) are not supported",
                hint="use site=CODE:volume=CODE/path",
            )
        self._site_cache[party] = found
        return found

    def volume(self, ref: str | None) -> VolumeRef:
        cached = self._volume_cache.get(ref)
        if cached is None:
            cached = self._volume_cache[ref] = self._find_volume(ref)
        return cached

    def _find_volume(self, ref: str | None) -> VolumeRef:
        if ref is None or ref.lower() == DEFAULT_VOLUME:
            found = next((v for v in self.volumes if v.default), None)
            if found is None:
                raise NotFoundError(
                    "the workspace has no default volume", hint="name one: volume=CODE/path"
                )
            return found
        key = ref.lower()
        found = next(
            (v for v in self.volumes if v.code == key or (is_entity_id(ref) and v.id == ref)), None
        )
        if found is None:
            raise NotFoundError(f"no volume {ref!r}", hint="see: reelsync volume list")
        return found

    def prefix(self, volume: VolumeRef, site: SiteRef) -> str:
        prefix = self.prefixes.get((volume.id, site.id))
        if prefix is None:
            raise ValidationError(
                f"volume {volume.code} has no path at site {site.code}",
                hint=f"add one: reelsync volume update {volume.code} --path {site.code}=/PREFIX",
            )
        return prefix

    def locate(self, site: SiteRef, location: Location) -> tuple[VolumeRef, str]:
        """The volume and relative path of ``location`` at ``site``."""
        if not location.absolute:
            volume = self.volume(location.volume)
            if not volume.enabled:
                raise ValidationError(f"volume {volume.code} is disabled")
            self.prefix(volume, site)
            return volume, location.path
        best: tuple[VolumeRef, str] | None = None
        best_len = -1
        wanted = location.path
        for volume in self.volumes:
            prefix = self.prefixes.get((volume.id, site.id))
            if prefix is None:
                continue
            rest = _under(wanted, prefix)
            if rest is not None and len(prefix) > best_len:
                best, best_len = (volume, rest), len(prefix)
        if best is None:
            raise PathError(
                f"{location.path} is not inside any volume at site {site.code}",
                hint="use volume=CODE/path, or a path under a volume's prefix",
            )
        if not best[0].enabled:
            raise ValidationError(f"volume {best[0].code} is disabled")
        return best


def _under(path: str, prefix: str) -> str | None:
    """The rest of ``path`` below ``prefix``, or None (drive letters compare case-insensitively)."""
    fold = len(prefix) > 1 and prefix[1] == ":"
    p, q = (path.lower(), prefix.lower()) if fold else (path, prefix)
    q = q.rstrip("/")
    if p == q:
        return ""
    if p.startswith(q + "/"):
        return path[len(q) + 1 :]
    return None
