"""Sampling defaults shared by every generator of SIGMA-GEN images: training previews,
`datagen sample` and `datagen eval`, so the three are comparable image for image.

The paper gives no sampling settings, so these are FLUX.1 Kontext [dev]'s as diffusers ships
and documents it: 28 steps (FluxKontextPipeline's default) and an embedded guidance of 2.5
(what diffusers' Kontext examples pass; the signature's 3.5 is the same default as
FluxPipeline's text-to-image one). Training feeds the guidance embedding `TrainConfig.guidance`
(1.0); these are the inference values.
"""

INFERENCE_STEPS = 28
INFERENCE_GUIDANCE = 2.5
