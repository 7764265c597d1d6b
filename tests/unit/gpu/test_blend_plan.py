"""The blend's host bookkeeping (``semcache.gpu.blend.plan``): no model, no device."""

from __future__ import annotations

import numpy as np
import pytest
from semcache.gpu.blend.config import BlendConfig
from semcache.gpu.blend.plan import plan_blend
from semcache.gpu.chunks.ids import Segment, chunk_id

pytestmark = pytest.mark.unit


def _chunk(start: int, n: int) -> Segment:
    tokens = tuple(range(start, start + n))
    return Segment(tokens, chunk_id(tokens))


def _plain(start: int, n: int) -> Segment:
    return Segment(tuple(range(start, start + n)))


def test_rows_flags_and_counts_of_a_rag_prompt() -> None:
    segs = [_plain(1000, 3), _chunk(10, 8), _chunk(40, 12), _plain(2000, 5)]
    plan = plan_blend(segs, BlendConfig(ratio=0.25, boundary_tokens=2), num_layers=4)
    assert plan.total == 28 and plan.token_ids[:4].tolist() == [1000, 1001, 1002, 10]
    assert plan.segment_rows == [(0, 3), (3, 11), (11, 23), (23, 28)]
    assert plan.chunk_rows == [(3, 11), (11, 23)]
    assert plan.flags[0].tolist() == [0] * 3 + [1] * 20 + [0] * 5
    assert np.flatnonzero(plan.flags[1]).tolist() == [3, 4, 11, 12]
    assert plan.plain_rows.tolist() == [0, 1, 2, 23, 24, 25, 26, 27]
    assert (plan.n_chunk, plan.n_select, plan.n_query) == (20, 5, 5)
    assert plan.by_query and not plan.last_is_chunk and plan.first == 0


def test_a_prompt_ending_in_a_chunk_has_no_question_and_computes_its_last_token() -> None:
    plan = plan_blend([_plain(1000, 4), _chunk(10, 10)], BlendConfig(ratio=0.2), num_layers=4)
    assert plan.last_is_chunk and plan.n_query == 0 and not plan.by_query
    assert plan.n_select == 3  # round(0.2 * 10) + the last token


def test_query_selection_past_layer_zero_reads_cached_kv_from_the_next_layer() -> None:
    segs = [_chunk(10, 8), _plain(2000, 3)]
    assert plan_blend(segs, BlendConfig(check_layer=2), num_layers=4).first == 3
    assert plan_blend(segs, BlendConfig(select="deviation", check_layer=2), num_layers=4).first == 2
    assert plan_blend(segs, BlendConfig(ratio=0.0, check_layer=2), num_layers=4).first == 2


def test_computed_rows_are_neither_selectable_nor_carried() -> None:
    segs = [_plain(1000, 2), _chunk(10, 8), _plain(2000, 3)]
    plan = plan_blend(segs, BlendConfig(ratio=0.5, select="deviation"), num_layers=4, computed=6,
                      external_attention=True)  # fmt: skip
    assert plan.flags[0].tolist() == [0] * 6 + [1] * 4 + [0] * 3
    assert plan.plain_rows.tolist() == [10, 11, 12]
    assert (plan.n_chunk, plan.n_select) == (4, 2)


@pytest.mark.parametrize(("segments", "kwargs", "error"), [
    ([], {}, "no segments"),
    ([Segment(())], {}, "empty segment"),
    ([("not", "a segment")], {}, "Segment instances"),
    ([_chunk(10, 4)], {"computed": 2}, "needs an attention store"),
    ([_chunk(10, 4)], {"computed": 2, "external_attention": True}, "select='deviation' only"),
    ([_chunk(10, 4)], {"computed": 4, "external_attention": True}, "computed must be in"),
    ([_chunk(10, 4)], {"num_layers": 1, "cfg": BlendConfig(select="deviation")}, "check_layer 1"),
], ids=["none", "empty", "type", "computed-alone", "computed-query", "computed-all", "layer"])
def test_bad_requests_are_refused(segments, kwargs, error) -> None:
    cfg = kwargs.pop("cfg", BlendConfig())
    with pytest.raises((ValueError, TypeError), match=error):
        plan_blend(segments, cfg, kwargs.pop("num_layers", 4), **kwargs)
