"""The LangChain adapters refuse a non-string ``user``, as the proxy and the cache API do."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from pydantic import ValidationError
from semcache.adapters.langchain import SemcacheCache, SemcacheChatModel

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("user", [111, ["carol"], {"id": "bob"}, 1.5])
def test_cache_refuses_non_string_user(user, tmp_path):
    with pytest.raises(TypeError, match="user must be a string"):
        SemcacheCache(f"sqlite:///{tmp_path}/c.db", user=user)


@pytest.mark.parametrize("user", [111, ["carol"], {"id": "bob"}])
def test_chat_model_refuses_non_string_user(user, tmp_path):
    with pytest.raises(ValidationError):
        SemcacheChatModel(model=FakeListChatModel(responses=["x"]),
                          backend=f"sqlite:///{tmp_path}/c.db", user=user)


def test_string_user_is_kept(tmp_path):
    cache = SemcacheCache(f"sqlite:///{tmp_path}/c.db", user="alice")
    assert cache.user == "alice"
