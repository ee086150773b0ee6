from datagen.pipeline.preflight import build_stage
from datagen.store.inflight import Sample


def test_prompts_are_seeded_and_within_the_subject_range(small_cfg, through):
    a = through("prompts", n=8)
    b = through("prompts", n=8)
    assert [s.meta for s in a] == [s.meta for s in b]
    lo, hi = small_cfg.stages.prompts.num_subjects
    for s in a:
        assert lo <= len(s.subjects) <= hi
        assert s.meta["prompt"]["full"] and s.meta["prompt"]["background"] in s.meta["prompt"]["full"]
        captions = [x["caption"] for x in s.subjects]
        assert len(set(captions)) == len(captions)
        assert all(x["name"] and x["caption"].endswith(x["name"]) for x in s.subjects)
    assert len({s.meta["prompt"]["full"] for s in a}) > 1


def test_subject_count_range_is_config(small_cfg):
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.prompts.num_subjects = (5, 5)
    out = build_stage("prompts", cfg).process_batch([Sample(index=i, shard=0, seed=i) for i in range(4)])
    assert all(len(s.subjects) == 5 for s in out)
