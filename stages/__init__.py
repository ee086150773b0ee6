"""The recipe's stages, one module each, and their registry. Plain Python: the pipeline maps
them onto workers (datagen.pipeline), and checks a run's stages before it starts
(datagen.pipeline.preflight).

Importing a stage module is cheap (models and Open3D load in `setup()` or on first use), so
fingerprints read `version` and `reads` from this registry without loading any model stack.
"""

from __future__ import annotations

from datagen.stages.base import Stage
from datagen.stages.boxes import BoxesStage
from datagen.stages.caption import CaptionStage
from datagen.stages.depth import DepthStage
from datagen.stages.filter import FilterStage
from datagen.stages.idcheck import IdcheckStage
from datagen.stages.prompts import PromptsStage
from datagen.stages.repose import ReposeStage
from datagen.stages.segment import SegmentStage
from datagen.stages.source import SourceStage
from datagen.stages.t2i import T2IStage

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (PromptsStage, T2IStage, SourceStage, CaptionStage, SegmentStage, DepthStage, BoxesStage, ReposeStage, IdcheckStage, FilterStage)
}
