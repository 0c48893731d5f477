"""Bearer tokens of machine clients, rotation included (alerts.auth, the console's client list)."""

from __future__ import annotations

from types import SimpleNamespace

from alerts.auth import Person, bearer_holder, tokens_in
from alerts.console.api import client_tokens


def test_a_setting_holds_one_token_or_two_while_it_is_rotated():
    assert tokens_in("abc") == ["abc"]
    assert tokens_in(" new-token , old-token ") == ["new-token", "old-token"]
    assert tokens_in("") == tokens_in(None) == tokens_in(" , ") == []


def test_both_tokens_of_a_rotation_name_the_same_client_and_nothing_else_does():
    clients = [SimpleNamespace(name="hotline", role="patrol", token_env="SHAFTWATCH_TOKEN_HOTLINE"),
               SimpleNamespace(name="drones", role="ops", token_env="SHAFTWATCH_TOKEN_DRONES")]
    holders = client_tokens(clients, {"SHAFTWATCH_TOKEN_HOTLINE": "h-new,h-old"})  # drones: no token, no entry
    assert holders == {"h-new": Person("hotline", "patrol"), "h-old": Person("hotline", "patrol")}
    assert bearer_holder("Bearer h-old", holders) == bearer_holder("Bearer h-new", holders) == Person("hotline", "patrol")
    for offered in ("Bearer h-new,h-old", "Bearer h-", "h-new", "Bearer "):
        assert bearer_holder(offered, holders) is None
