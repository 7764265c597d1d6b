"""What a row of the hand-written pair files may hold: categories, kinds, each writer's domains.

The serialisers (``gen_seeds.py``, ``gen_assistant.py``) refuse anything else, and
``tests/unit/datasets/test_written_pairs.py`` checks every file against the same lists.
"""

CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase",
             "casing", "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time",
              "direction", "role", "condition", "specificity", "related", "reworded_trap"}
DOMAINS = {
    "support": {"accounts", "subscriptions", "retail", "telecom", "smart_home"},
    "tech": {"programming", "it_help", "math"},
    "life": {"health", "cooking", "home_garden", "cars_bikes", "pets", "parenting_education",
             "workplace", "legal_public"},
    "assistant": {"science", "history", "geography", "people", "companies", "arts", "sports",
                  "language", "writing", "explain", "recommend", "chat"},
    "hobbies": {"gaming", "music", "movies_tv", "photography", "fitness", "outdoors"},
    "services": {"shipping_post", "utilities", "social_media", "school_admin", "device_repair"},
}
