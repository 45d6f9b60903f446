"""Where the master key comes from, how it is spelled, and the embedded database's key file."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from uuid import uuid4

import pytest

from services.privacy.master import (
    MasterKey,
    MasterKeyError,
    WrongMasterKey,
    load_master_key,
    new_master_key,
    parse_master_key,
    write_key_file,
)
from services.settings import Settings

RAW = bytes(range(32))


def embedded(data_dir: Path) -> Settings:
    return Settings(database_url=None, data_dir=data_dir)


def external(data_dir: Path) -> Settings:
    return Settings(database_url="postgresql://db/ledger", data_dir=data_dir)


@pytest.mark.parametrize(
    "spelling",
    [
        RAW.hex(),
        RAW.hex().upper(),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        f"  {RAW.hex()}\n",
    ],
)
def test_a_key_reads_the_same_in_hex_and_in_urlsafe_base64(spelling: str) -> None:
    assert parse_master_key(spelling, source="test").kek_id == MasterKey(RAW).kek_id


@pytest.mark.parametrize(
    "text",
    ["", "short", RAW.hex()[:-2], RAW.hex() + "00", "g" * 64, "secret+value/with=base64+chars+x"],
)
def test_a_malformed_key_is_refused_naming_its_source_and_never_its_text(text: str) -> None:
    with pytest.raises(MasterKeyError) as refused:
        parse_master_key(text, source="LEDGER_MASTER_KEY")

    message = str(refused.value)
    assert message.startswith("LEDGER_MASTER_KEY does not hold a master key: expected 32 ")
    assert "\n" not in message
    assert not text or text not in message


def test_the_kek_id_names_a_key_without_revealing_it() -> None:
    key = MasterKey(RAW)

    assert key.kek_id == MasterKey(bytes(RAW)).kek_id != new_master_key().kek_id
    assert key.kek_id.startswith("kek-") and RAW.hex()[:8] not in key.kek_id
    assert repr(key) == f"MasterKey({key.kek_id})"


def test_a_wrapped_key_unwraps_only_with_its_master_key_and_its_context() -> None:
    key, other = new_master_key(), new_master_key()
    wrapped = key.wrap(RAW, b"member_keys:a")

    assert key.unwrap(wrapped, b"member_keys:a") == RAW
    assert RAW not in wrapped
    with pytest.raises(WrongMasterKey, match="does not unwrap a stored key"):
        other.unwrap(wrapped, b"member_keys:a")
    with pytest.raises(WrongMasterKey):
        key.unwrap(wrapped, b"member_keys:b")
    for damaged in (wrapped[:-1], wrapped[:5], b""):
        with pytest.raises(WrongMasterKey, match="a damaged row"):
            key.unwrap(damaged, b"member_keys:a")


def test_the_environment_variable_gives_the_key(tmp_path: Path) -> None:
    loaded = load_master_key(external(tmp_path), {"LEDGER_MASTER_KEY": RAW.hex()})

    assert loaded.kek_id == MasterKey(RAW).kek_id
    assert not (tmp_path / "master.key").exists()


def test_a_key_file_gives_the_key(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text(base64.urlsafe_b64encode(RAW).decode() + "\n")

    loaded = load_master_key(external(tmp_path), {"LEDGER_MASTER_KEY_FILE": str(path)})

    assert loaded.kek_id == MasterKey(RAW).kek_id


def test_a_missing_key_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kek"

    with pytest.raises(MasterKeyError, match=f"the master key file {missing} does not exist"):
        load_master_key(external(tmp_path), {"LEDGER_MASTER_KEY_FILE": str(missing)})


def test_both_sources_at_once_are_refused(tmp_path: Path) -> None:
    env = {"LEDGER_MASTER_KEY": RAW.hex(), "LEDGER_MASTER_KEY_FILE": str(tmp_path / "kek")}

    with pytest.raises(MasterKeyError, match="not both"):
        load_master_key(external(tmp_path), env)


def test_an_external_database_never_gets_a_generated_key(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="no master key: set LEDGER_MASTER_KEY or"):
        load_master_key(external(tmp_path), {})

    assert list(tmp_path.iterdir()) == []


def test_the_embedded_database_gets_a_key_file_of_mode_0600_made_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = load_master_key(embedded(data_dir), {})
    again = load_master_key(embedded(data_dir), {})

    path = data_dir / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.kek_id == again.kek_id
    assert parse_master_key(path.read_text(), source="file").kek_id == first.kek_id
    assert sorted(p.name for p in data_dir.iterdir()) == ["master.key"]


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / f"{uuid4()}.key"
    first, second = new_master_key(), new_master_key()

    assert write_key_file(path, first) is True
    assert write_key_file(path, second) is False
    assert parse_master_key(path.read_text(), source="file").kek_id == first.kek_id
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
