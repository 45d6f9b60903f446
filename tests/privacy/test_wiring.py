"""Every process gets its keyring from the composition root, checked and following erasures."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from psycopg import AsyncConnection

from services import bootstrap
from services.api.app import create_app
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey, WrongMasterKey, new_master_key

pytestmark = pytest.mark.anyio


async def test_the_api_holds_one_keyring_that_follows_erasures(
    database_url: str, conn: AsyncConnection[Any], master: MasterKey
) -> None:
    app = create_app(database_url)

    async with AsyncTestClient(app=app):
        keyring = app.state.keyring
        assert isinstance(keyring, Keyring) and keyring.following
        assert keyring.master.kek_id == master.kek_id
        assert keyring.handle_secret == (await Keyring.open(conn, master)).handle_secret

    assert not keyring.following


async def test_the_write_path_and_a_runner_share_the_process_keyring(database_url: str) -> None:
    async with bootstrap.write_path(database_url) as wired:
        runner = bootstrap.runner(database_url, keyring=wired.keyring)

        assert runner.keyring is wired.keyring and wired.keyring.following


async def test_a_write_path_with_the_wrong_master_key_does_not_open(
    database_url: str, keyring: Keyring
) -> None:
    with pytest.raises(WrongMasterKey):
        async with bootstrap.write_path(database_url, master=new_master_key()):
            pytest.fail("opened with the wrong master key")
