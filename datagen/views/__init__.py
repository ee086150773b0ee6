"""Read-only views of a run: status, the report and its plots, the contact sheet (`show`) and
the browsable pages. Views read through datagen.final and datagen.pipeline.markers only."""
