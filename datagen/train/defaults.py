"""Sampling defaults shared by every generator of SIGMA-GEN images: training previews,
`datagen sample` and `datagen eval`, so the three are comparable image for image.

The paper gives no sampling settings. FLUX.1 Kontext [dev]'s: 28 steps (FluxKontextPipeline's
default, and the model card's), guidance 2.5 (the embedded guidance the model card and
diffusers' Kontext examples use; the pipeline signature's 3.5 is FLUX.1 [dev]'s text-to-image
default, which Kontext shares by inheritance). Training itself feeds the guidance embedding
`TrainConfig.guidance` (1.0); these are the inference values.
"""

INFERENCE_STEPS = 28
INFERENCE_GUIDANCE = 2.5
