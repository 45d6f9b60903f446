"""Members' data keys: made, unwrapped, cached with a bound, and dropped on erasure.

One `Keyring` per process. It unwraps keys with the master key, keeps the most recently
used ones in a bounded LRU (memory stays flat however long the ledger grows), and listens
on `ledger_member_keys`: the database NOTIFYs a member's id when erasure deletes their
key, and every process drops its copy at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import AsyncConnection

from domain.errors import MemberIsForgotten
from services.privacy.master import KEY_BYTES, NONCE_BYTES, MasterKey, WrongMasterKey
from services.settings import SettingsError

log = logging.getLogger("community_ledger.privacy")

CHANNEL = "ledger_member_keys"
CACHE_SIZE = 100_000
"""Data keys kept in memory per process (32 bytes each, a few MB at most): bounded by the
number of members, never by the number of events. Set LEDGER_KEY_CACHE_SIZE to change it."""
CACHE_SIZE_ENV = "LEDGER_KEY_CACHE_SIZE"
CIPHER_CACHE_SIZE = 16_384
"""AES-GCM objects kept for the cached keys, the newest made (about 2.5 kB each, 40 MB
at most): a community's active members seal and open without rebuilding their cipher
(as much CPU as an encryption, ~3 us). Bounded apart from the keys, which are a hundred
times smaller. 4,096 kept a fifth of the batch bench's 20,000 members: most of a batch's
owners had their cipher rebuilt (docs/performance.md, issue #12's fifth pass)."""
HANDLE_SECRET = "handle_hmac"
RECONNECT_SECONDS = 1.0
FORGOTTEN = "LK001"
"""The SQLSTATE of a new key for a member already forgotten."""
ROTATED = "LK002"
"""The SQLSTATE of a new key wrapped by a master key the ledger no longer uses."""

# Member ids and wrapped keys go as binary arrays (`%b`): psycopg dumps a text array by
# quoting each element with a regular expression, ~10 us per member of a new batch.
# `cacheable`: committed before this transaction began. A key this transaction made (or
# one made by a transaction that started with it) may still roll back, and a cached key
# that never committed would seal data nobody else can read.
_READ_KEYS = """
    SELECT member_id, wrapped, kek_id, created_at < transaction_timestamp() AS cacheable
    FROM member_keys
    WHERE member_id = ANY (%(ids)b::uuid[])
"""

# Members already forgotten are skipped here (the insert trigger would refuse them), so
# they are simply absent from the answer. A key another process made first wins.
_CREATE_KEYS = """
    INSERT INTO member_keys (member_id, wrapped, kek_id)
    SELECT new.member_id, new.wrapped, %(kek_id)s
    FROM unnest(%(ids)b::uuid[], %(wrapped)b::bytea[]) AS new(member_id, wrapped)
    WHERE NOT ledger_member_forgotten(new.member_id)
    ON CONFLICT (member_id) DO NOTHING
"""

# Taken before the delete, in a statement of its own, so the delete sees every key made
# for these members until now (a maker in the same bucket finishes first; see 0006).
_LOCK_FOR_ERASURE = """
    SELECT pg_advisory_xact_lock(member_keys_lock_class(), b.bucket)
    FROM (
        SELECT DISTINCT member_keys_lock_bucket(m) AS bucket
        FROM unnest(%(ids)s::uuid[]) AS m
        ORDER BY 1
    ) AS b
"""

_DESTROY_KEYS = """
    DELETE FROM member_keys
    WHERE member_id = ANY (%(ids)s::uuid[])
    RETURNING member_id
"""

_READ_SECRET = "SELECT wrapped, kek_id FROM ledger_secrets WHERE name = %(name)s"
_CREATE_SECRET = """
    INSERT INTO ledger_secrets (name, wrapped, kek_id)
    VALUES (%(name)s, %(wrapped)s, %(kek_id)s)
    ON CONFLICT (name) DO NOTHING
"""


def configured_cache_size(environ: dict[str, str] | None = None) -> int:
    """LEDGER_KEY_CACHE_SIZE (a positive whole number of keys), else CACHE_SIZE."""
    raw = (os.environ if environ is None else environ).get(CACHE_SIZE_ENV, "").strip()
    if not raw:
        return CACHE_SIZE
    try:
        size = int(raw.replace("_", ""))
    except ValueError:
        size = 0
    if size < 1:
        raise SettingsError(f"{CACHE_SIZE_ENV} must be a positive number of keys, not {raw!r}")
    return size


@dataclass(frozen=True)
class DraftKeys:
    """New members' keys made in memory, to be inserted by the append that first uses them
    (services/store/appending.py): one statement and one commit for both, and a refused
    append leaves no key behind. Cached only once that append has committed (`adopt`)."""

    keys: dict[str, bytes]
    member_ids: list[str]
    """Sorted: two appends inserting keys for the same members insert them in one order,
    so they wait for each other (the later one then retries) rather than deadlock."""
    wrapped: list[bytes]
    kek_id: str
    evictions: int
    ciphers: dict[str, AESGCM] = field(default_factory=dict)
    """The AES-GCM objects the append sealed with, by member: kept with the keys (`adopt`),
    so the new members' next batch does not build them again."""


def key_error(error: psycopg.Error, kek_id: str) -> Exception | None:
    """What a refused key insert means (member_keys_guard_insert, migration 0006), if it was one."""
    if error.sqlstate == FORGOTTEN and error.diag.message_detail:
        # Forgotten while we made their key (an erasure that committed first).
        return MemberIsForgotten(UUID(error.diag.message_detail))
    if error.sqlstate == ROTATED:
        return WrongMasterKey(
            f"the master key was rotated away from {kek_id}: restart this process with the new one"
        )
    return None


def member_key_context(member_id: UUID) -> bytes:
    """Associated data of a wrapped member key: it unwraps only in that member's row."""
    return b"member_keys:" + member_id.bytes


def _text_key_context(member: str) -> bytes:
    """`member_key_context` of a canonical id text, without parsing a UUID."""
    return b"member_keys:" + bytes.fromhex(member.replace("-", ""))


def secret_context(name: str) -> bytes:
    return b"ledger_secrets:" + name.encode()


WEBHOOK_SECRET_CONTEXT = b"webhooks:secret"
"""Associated data of a wrapped webhook signing secret: it unwraps only as one."""


class Keyring:
    """Data keys by member, and the handle secret, for one process."""

    def __init__(
        self, master: MasterKey, handle_secret: bytes, *, cache_size: int = CACHE_SIZE
    ) -> None:
        self.master = master
        self.handle_secret = handle_secret
        """The HMAC-SHA-256 secret that keys handle hashes in tags and conditions."""
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        """By member id in its canonical text (lowercase, hyphens), as payloads hold it."""
        self.cipher_cache_size = min(cache_size, CIPHER_CACHE_SIZE)
        self._ciphers: OrderedDict[str, AESGCM] = OrderedDict()
        self._evictions = 0
        self._listeners = 0
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @classmethod
    async def open(
        cls, conn: AsyncConnection[Any], master: MasterKey, *, cache_size: int | None = None
    ) -> Keyring:
        """The keyring, once `master` is shown to be the KEK the ledger's keys are wrapped by.

        Makes the handle secret on a ledger's first start. Raises WrongMasterKey.
        `cache_size`: default LEDGER_KEY_CACHE_SIZE, else CACHE_SIZE.
        """
        size = configured_cache_size() if cache_size is None else cache_size
        return cls(master, await load_secret(conn, master, HANDLE_SECRET), cache_size=size)

    async def data_keys(
        self, conn: AsyncConnection[Any], member_ids: Iterable[UUID], *, create: bool
    ) -> dict[UUID, bytes]:
        """The 32-byte data keys of these members; with `create`, new members get one.

        One statement for the keys not cached, however many members; three when some must
        be made (read, insert, read back). Forgotten members have no key and are absent
        from the answer; one forgotten while its key was being made raises MemberIsForgotten.
        """
        by_text = {str(member_id): member_id for member_id in member_ids}
        found = await self.keys_of(conn, by_text, create=create)
        return {by_text[text]: key for text, key in found.items()}

    async def keys_of(
        self, conn: AsyncConnection[Any], members: Iterable[str], *, create: bool
    ) -> dict[str, bytes]:
        """`data_keys` by member id as text, in its canonical spelling (`canonical`): what
        payloads and boxes hold, so a batch parses no UUID and hashes only strings."""
        found: dict[str, bytes] = {}
        missing: set[str] = set()
        cache = self._cache
        for member in members:
            key = cache.get(member)
            if key is None:
                missing.add(member)
            else:
                cache.move_to_end(member)
                found[member] = key
        if not missing:
            return found
        evictions = self._evictions
        found |= await self._read(conn, missing, evictions)
        missing -= found.keys()
        if create and missing:
            ordered = sorted(missing)
            wrapped = [
                self.master.wrap(os.urandom(KEY_BYTES), member_key_context(UUID(m)))
                for m in ordered
            ]
            try:
                await conn.execute(
                    _CREATE_KEYS,
                    {"ids": ordered, "wrapped": wrapped, "kek_id": self.master.kek_id},
                )
            except psycopg.Error as error:
                refused = key_error(error, self.master.kek_id)
                if refused is not None:
                    raise refused from None
                raise
            found |= await self._read(conn, missing, evictions)
        return found

    def cipher(self, member: str, key: bytes) -> AESGCM:
        """The AES-GCM object of a member's key: kept (first in, first out, CIPHER_CACHE_SIZE)
        for cached keys only, and dropped with them (erasure, eviction, a lost listener)."""
        cipher = self._ciphers.get(member)
        if cipher is not None:  # not reordered, as in `cached_ciphers`
            return cipher
        cipher = AESGCM(key)
        if self._cache.get(member) is key:
            self._keep(member, cipher)
        return cipher

    def _keep(self, member: str, cipher: AESGCM) -> None:
        """Keep a cipher of a cached key (the caller checked), evicting the oldest."""
        self._ciphers[member] = cipher
        self._ciphers.move_to_end(member)
        if len(self._ciphers) > self.cipher_cache_size:
            self._ciphers.popitem(last=False)

    def keep_ciphers(self, size: int) -> None:
        """Keep at most `size` AES-GCM objects from now on (the oldest go at once): for a
        process whose members seldom come back, where each kept one is ~2.5 kB held for
        nothing (an import of thousands of new members would fill all 16,384: ~40 MiB)."""
        self.cipher_cache_size = min(self.cache_size, size)
        while len(self._ciphers) > self.cipher_cache_size:
            self._ciphers.popitem(last=False)

    def cached_keys(self, members: Iterable[str]) -> dict[str, bytes]:
        """The cached keys of these members (marked as just used); no database read."""
        found: dict[str, bytes] = {}
        cache = self._cache
        for member in members:
            key = cache.get(member)
            if key is not None:
                cache.move_to_end(member)
                found[member] = key
        return found

    def cached_ciphers(self, members: Iterable[str]) -> tuple[dict[str, AESGCM], list[str]]:
        """The AES-GCM objects of these members whose keys are cached (kept ones reused,
        the others made and kept, their keys marked as just used), and the members whose
        key is not cached: a batch by members already seen skips `keys_of`. A member is
        found here only in its canonical spelling.

        A kept cipher found is not moved to the end of either list: two `move_to_end`s on
        dicts of tens of thousands of members cost a batch more than its cipher lookups
        (cold linked-list nodes). So kept ciphers go first in, first out, and a member seen
        only through its cipher may see its key evicted (and its cipher with it) after
        CACHE_SIZE other members' keys: then it is read again, once."""
        found: dict[str, AESGCM] = {}
        others: list[str] = []
        ciphers, keys = self._ciphers, self._cache
        for member in members:
            cipher = ciphers.get(member)
            if cipher is not None:  # neither list reordered: see the docstring
                found[member] = cipher
                continue
            key = keys.get(member)
            if key is None:
                others.append(member)
                continue
            keys.move_to_end(member)
            found[member] = cipher = AESGCM(key)
            ciphers[member] = cipher
            if len(ciphers) > self.cipher_cache_size:
                ciphers.popitem(last=False)
        return found, others

    def draft(self, members: Iterable[str]) -> DraftKeys:
        """Fresh keys for members (canonical id texts) that have none, for an append to
        insert (see DraftKeys)."""
        ordered = sorted(set(members))
        # One draw for every key and wrapping nonce (distinct slices), as a batch's boxes.
        size = KEY_BYTES + NONCE_BYTES
        drawn = os.urandom(size * len(ordered))
        keys: dict[str, bytes] = {}
        wrapped: list[bytes] = []
        wrap, context = self.master.wrap, _text_key_context
        for at, member in enumerate(ordered):
            start = at * size
            keys[member] = key = drawn[start : start + KEY_BYTES]
            nonce = drawn[start + KEY_BYTES : start + size]
            wrapped.append(wrap(key, context(member), nonce))
        return DraftKeys(keys, ordered, wrapped, self.master.kek_id, self._evictions)

    def adopt(self, draft: DraftKeys, stored: Iterable[str]) -> None:
        """Cache the drafted keys the committed append stored (`stored`: not those of members
        forgotten meanwhile), unless an erasure was noticed since they were drafted."""
        if draft.evictions == self._evictions and self._listening.is_set():
            for member in stored:
                self._remember(member, draft.keys[member])
                cipher = draft.ciphers.get(member)
                if cipher is not None:
                    self._keep(member, cipher)

    async def _read(
        self, conn: AsyncConnection[Any], members: set[str], evictions: int
    ) -> dict[str, bytes]:
        cur = await conn.execute(_READ_KEYS, {"ids": list(members)}, prepare=True)
        found = {}
        for member_id, wrapped, kek_id, cacheable in await cur.fetchall():
            if kek_id != self.master.kek_id:
                raise WrongMasterKey(
                    f"member keys are wrapped by master key {kek_id}, this process holds "
                    f"{self.master.kek_id}: restart it with the current master key"
                )
            key = self.master.unwrap(bytes(wrapped), member_key_context(member_id))
            member = str(member_id)
            found[member] = key
            # An erasure noticed while we read may have deleted a key we just read.
            if cacheable and evictions == self._evictions and self._listening.is_set():
                self._remember(member, key)
        return found

    def _remember(self, member: str, key: bytes) -> None:
        self._cache[member] = key
        self._cache.move_to_end(member)
        while len(self._cache) > self.cache_size:
            dropped, _ = self._cache.popitem(last=False)
            self._ciphers.pop(dropped, None)

    async def destroy(self, conn: AsyncConnection[Any], member_ids: Iterable[UUID]) -> set[UUID]:
        """Delete these members' keys; answer whose were there (erasure is idempotent).

        Run it in the transaction that appends their MemberForgotten: the database refuses
        it anywhere else, and NOTIFYs every process to drop its copy when it commits.
        """
        ids = list(set(member_ids))
        self.forget(ids)
        await conn.execute(_LOCK_FOR_ERASURE, {"ids": ids})
        cur = await conn.execute(_DESTROY_KEYS, {"ids": ids})
        return {row[0] for row in await cur.fetchall()}

    def forget(self, member_ids: Iterable[UUID]) -> None:
        """Drop cached keys (erasure seen in this or another process)."""
        self._evictions += 1
        for member_id in member_ids:
            self._cache.pop(str(member_id), None)
            self._ciphers.pop(str(member_id), None)

    def forget_all(self) -> None:
        self._evictions += 1
        self._cache.clear()
        self._ciphers.clear()

    @property
    def cached(self) -> int:
        return len(self._cache)

    def holds(self, member_id: UUID) -> bool:
        return str(member_id) in self._cache

    @property
    def following(self) -> bool:
        """Whether the erasure listener is connected (keys are cached only then)."""
        return self._listening.is_set()

    @asynccontextmanager
    async def listening(self, conninfo: str) -> AsyncIterator[None]:
        """Follow erasures for the block; nested blocks share the process's one listener.

        Keys are cached only while the listener is connected: a notification missed while
        it was not could leave an erased member's key in memory.
        """
        self._listeners += 1
        try:
            if self._listener is None:
                ready = asyncio.get_running_loop().create_future()
                self._listener = asyncio.create_task(self._listen(conninfo, ready))
                await ready
            yield
        finally:
            self._listeners -= 1
            if self._listeners == 0 and self._listener is not None:
                task, self._listener = self._listener, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._listening.clear()
                self.forget_all()

    async def _listen(self, conninfo: str, ready: asyncio.Future[None]) -> None:
        try:
            while True:
                try:
                    async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                        await conn.execute(f"LISTEN {CHANNEL}")
                        self.forget_all()
                        self._listening.set()
                        if not ready.done():
                            ready.set_result(None)
                        async for notice in conn.notifies():
                            self._evict(notice.payload)
                except (psycopg.Error, OSError) as error:
                    log.warning("erasure listener lost (keys uncached until back): %s", error)
                finally:
                    self._listening.clear()
                    self.forget_all()
                if not ready.done():
                    ready.set_result(None)  # start uncached rather than not at all
                await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            if not ready.done():
                ready.set_result(None)  # whatever ended us, `listening` must not wait forever

    def _evict(self, payload: str) -> None:
        try:
            member_id = UUID(payload)
        except ValueError:
            self.forget_all()
            return
        self.forget([member_id])


async def load_secret(conn: AsyncConnection[Any], master: MasterKey, name: str) -> bytes:
    """A ledger secret, made on first use; raises WrongMasterKey if `master` did not wrap it."""
    for _ in range(2):
        cur = await conn.execute(_READ_SECRET, {"name": name})
        row = await cur.fetchone()
        if row is not None:
            wrapped, kek_id = row
            if kek_id != master.kek_id:
                raise WrongMasterKey(
                    f"the master key given ({master.kek_id}) is not the one the ledger's "
                    f"keys are wrapped by ({kek_id}): check {_SOURCES}"
                )
            return master.unwrap(bytes(wrapped), secret_context(name))
        wrapped = master.wrap(os.urandom(KEY_BYTES), secret_context(name))
        try:
            await conn.execute(
                _CREATE_SECRET, {"name": name, "wrapped": wrapped, "kek_id": master.kek_id}
            )
        except psycopg.errors.InsufficientPrivilege:
            raise LookupError(
                f"the ledger has no {name} secret yet, and this database role may not make "
                "one: run `community-ledger db upgrade` as the database's owner first"
            ) from None
    raise AssertionError("a secret inserted and not found")


_SOURCES = "LEDGER_MASTER_KEY, LEDGER_MASTER_KEY_FILE or the data folder's master.key"
