"""`datagen run` and `datagen plan`: preflight, resume, fingerprints, completion markers (their
one owner), the shard task, the local and Ray runners, GPU pools, simulation, progress, costs."""
