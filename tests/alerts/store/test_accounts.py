"""People's accounts on the real store (SQLite and PostgreSQL): hashed passwords, sessions
that end, throttled guessing, everything audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.store import StoreError
from alerts.store.accounts import MAX_FAILURES_PER_USER, THROTTLE_WINDOW_S
from alerts.store.schema import audit, sessions, users


def test_a_user_signs_in_with_the_right_password_only_and_no_hash_leaves_the_store(store):
    user = store.accounts.add("wang", "patrol", "correct horse battery", "admin", "王队员")
    assert user["role"] == "patrol" and "password_hash" not in user and user["display_name"] == "王队员"
    with store.engine.connect() as c:
        stored = c.execute(sa.select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert store.accounts.sign_in("wang", "wrong password!", "10.0.0.1", 3600) is None
    person, token, csrf = store.accounts.sign_in("wang", "correct horse battery", "10.0.0.1", 3600)
    assert (person.name, person.role) == ("wang", "patrol") and len(token) > 30 and len(csrf) > 20
    assert store.accounts.session(token) == (person, csrf)
    with store.engine.connect() as c:
        assert c.execute(sa.select(sessions.c.id)).scalar_one() != token  # only its hash is kept
    store.accounts.sign_out(token, person)
    assert store.accounts.session(token) is None
    with store.engine.connect() as c:
        actions = [r.action for r in c.execute(sa.select(audit).order_by(audit.c.id))]
    assert actions == ["user_added", "sign_in_refused", "signed_in", "signed_out"]


def test_accounts_refuse_bad_names_roles_and_short_passwords(store):
    for args, message in ((("Wang Wu", "patrol", "long enough pw"), "user name"),
                          (("wang", "chief", "long enough pw"), "role"),
                          (("wang", "patrol", "short"), "at least 10")):
        with pytest.raises(StoreError, match=message):
            store.accounts.add(*args, "admin")
    store.accounts.add("wang", "patrol", "long enough pw", "admin")
    with pytest.raises(StoreError, match="exists"):
        store.accounts.add("wang", "ops", "another long pw", "admin")


def test_a_disabled_user_or_a_new_password_ends_every_session(store):
    store.accounts.add("li", "ops", "first password", "admin")
    _, first, _ = store.accounts.sign_in("li", "first password", "", 3600)
    store.accounts.set_password("li", "second password", "admin")
    assert store.accounts.session(first) is None
    assert store.accounts.sign_in("li", "first password", "", 3600) is None
    _, second, _ = store.accounts.sign_in("li", "second password", "", 3600)
    store.accounts.disable("li", "admin")
    assert store.accounts.session(second) is None
    assert store.accounts.sign_in("li", "second password", "", 3600) is None


def test_guessing_is_throttled_per_user_name_for_the_window(store):
    store.accounts.add("zhao", "patrol", "the real password", "admin")
    assert store.accounts.retry_after("zhao", "10.0.0.9") == 0
    for _ in range(MAX_FAILURES_PER_USER):
        assert store.accounts.sign_in("zhao", "a wrong guess!", "10.0.0.9", 3600) is None
    wait = store.accounts.retry_after("zhao", "10.0.0.9")
    assert 0 < wait <= THROTTLE_WINDOW_S
    assert store.accounts.retry_after("someone-else", "10.0.0.8") == 0  # the lock is on that name only
    import time
    later = time.time() + THROTTLE_WINDOW_S + 1
    assert store.accounts.retry_after("zhao", "10.0.0.9", now=later) == 0  # the window passes


def test_an_expired_session_opens_nothing(store):
    store.accounts.add("sun", "patrol", "the real password", "admin")
    _, token, _ = store.accounts.sign_in("sun", "the real password", "", ttl_s=-1)
    assert store.accounts.session(token) is None
