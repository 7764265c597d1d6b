"""Entity rule: swapped languages, libraries, places, drugs, people, products."""

import pytest

from semcache.verify.entities import entity_class, looks_like_entity

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("how to read a json file in python", "how to read a json file in rust"),
        ("Can I take aspirin for a hangover?", "Can I take ibuprofen for a hangover?"),
        ("Best museums to visit in Madrid", "Best museums to visit in Vienna"),
        ("How do I set up a virtual host in nginx?", "How do I set up a virtual host in apache?"),
        ("Who directed the film Arrival by Villeneuve?", "Who directed the film Arrival by Nolan?"),
        ("Is the Pixel 8 waterproof?", "Is the Galaxy 8 waterproof?"),
        ("Does Node.js support ES modules?", "Does Deno support ES modules?"),
        ("Migrating from MySQL to PostgreSQL", "Migrating from MySQL to SQLite"),
    ],
)
def test_swapped_entity_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule in ("entity", "content")


def test_entity_reason_is_readable(verifier):
    verdict = verifier.verify("how do I parse dates in java", "how do I parse dates in kotlin")
    assert verdict.rule == "entity"
    assert verdict.reason == "entity changed: kotlin -> java"


def test_added_entity_rejects(verifier):
    verdict = verifier.verify(
        "How do I profile memory usage in Django?", "How do I profile memory usage?"
    )
    assert not verdict.accepted and verdict.rule == "entity"


def test_same_entities_in_other_order_pass(verifier):
    assert verifier.verify(
        "In Go, how do I read environment variables?", "How do I read environment variables in Go?"
    ).accepted


def test_entity_helpers():
    assert entity_class("ibuprofen") == "drug or supplement"
    assert entity_class("rust") == "programming language"
    assert entity_class("table") is None
    assert looks_like_entity("marseille", "Marseille", 4)
    assert not looks_like_entity("what", "What", 0)
    assert looks_like_entity("c#", "c#", 3)
