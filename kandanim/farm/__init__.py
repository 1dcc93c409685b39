"""Farm rendering on Ray (SPEC §13): whole screenplays on long-lived workers, one per GPU.

`render_on_cluster` is the entry point (`kandanim render --cluster …`). Ray is the optional
extra `kandanim[ray]`; nothing here imports it until a batch is sent.
"""

from kandanim.farm.batch import (
    TOTAL,
    BatchProgress,
    FarmOptions,
    NoBatchProgress,
    ScriptProgress,
    render_on_cluster,
)

__all__ = [
    "TOTAL",
    "BatchProgress",
    "FarmOptions",
    "NoBatchProgress",
    "ScriptProgress",
    "render_on_cluster",
]
