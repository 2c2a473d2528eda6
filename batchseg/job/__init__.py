"""A job from spec to finished store: ``spec`` (TOML + flags), ``plan`` (buckets and shards),
``run`` (discover -> plan -> execute -> finalise, resume), ``provenance`` and ``faults``."""
